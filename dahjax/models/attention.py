"""Attention modules used by the hashing backbones.

CBAM (Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018) is the
attention of DAH: channel attention from a shared MLP over average- and max-pooled
features, followed by spatial attention from a 7x7 convolution over the channel-wise
mean and max maps.

PFA, the parameter-free attention of DPFAH (= SimAM, Yang et al., "SimAM: A Simple,
Parameter-Free Attention Module for Convolutional Neural Networks", ICML 2021), weighs
every activation by the closed-form inverse energy of its neuron.

All modules take NHWC arrays.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dahjax.models import conv


class ChannelAttention(nn.Module):
  """sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))) with a shared C -> C/r -> C MLP."""
  reduction: int = 16
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    hidden = max(channels // self.reduction, 1)
    # One MLP applied to both pooled descriptors: the parameters are shared.
    mlp_in = nn.Dense(hidden, dtype=self.dtype, name='mlp_in')
    mlp_out = nn.Dense(channels, dtype=self.dtype, name='mlp_out')
    mlp = lambda v: mlp_out(nn.relu(mlp_in(v)))
    avg = jnp.mean(x, axis=(1, 2))
    mx = jnp.max(x, axis=(1, 2))
    return nn.sigmoid(mlp(avg) + mlp(mx))[:, None, None, :]


class SpatialAttention(nn.Module):
  """sigmoid(conv7x7([mean_c(x); max_c(x)]))."""
  kernel_size: int = 7
  dtype: jnp.dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pooled = jnp.concatenate(
        [jnp.mean(x, axis=-1, keepdims=True), jnp.max(x, axis=-1, keepdims=True)],
        axis=-1)
    logits = conv.Conv(1, self.kernel_size, use_bias=True, impl=self.conv_impl,
                       dtype=self.dtype, kernel_init=nn.initializers.lecun_normal(),
                       name='conv')(pooled)
    return nn.sigmoid(logits)


class CBAM(nn.Module):
  """Channel then spatial attention: F'' = Ms(F') * F', F' = Mc(F) * F."""
  reduction: int = 16
  kernel_size: int = 7
  dtype: jnp.dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x * ChannelAttention(self.reduction, self.dtype, name='channel')(x)
    return x * SpatialAttention(self.kernel_size, self.dtype, self.conv_impl,
                                name='spatial')(x)


def pfa(x: jax.Array, lam: float = 1e-4) -> jax.Array:
  """Parameter-free attention (DPFAH eqs. 6-9, SPEC 3.1) of NHWC `x`.

  Per image and channel, over the n + 1 = H * W positions:
  mu = mean(x), var = sum((x - mu)^2) / n,
  e_inv = (x - mu)^2 / (4 (var + lam)) + 1/2, and PFA(x) = x * sigmoid(e_inv).

  Args:
    x: activations [B, H, W, C] with H * W >= 2.
    lam: the regulariser lambda.

  Returns:
    `x` weighted by sigmoid(e_inv), same shape and dtype.
  """
  n = x.shape[1] * x.shape[2] - 1
  if n < 1:
    raise ValueError(f'PFA needs at least 2 positions per channel, got {x.shape[1:3]}.')
  # Statistics in float32 also when x is bfloat16.
  xf = x.astype(jnp.float32)
  d2 = jnp.square(xf - jnp.mean(xf, axis=(1, 2), keepdims=True))
  var = jnp.sum(d2, axis=(1, 2), keepdims=True) / n
  e_inv = d2 / (4.0 * (var + lam)) + 0.5
  return (xf * nn.sigmoid(e_inv)).astype(x.dtype)
