"""Attention modules used by the hashing backbones.

CBAM (Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018) is the
attention of DAH: channel attention from a shared MLP over average- and max-pooled
features, followed by spatial attention from a 7x7 convolution over the channel-wise
mean and max maps. All modules take NHWC arrays.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


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

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pooled = jnp.concatenate(
        [jnp.mean(x, axis=-1, keepdims=True), jnp.max(x, axis=-1, keepdims=True)],
        axis=-1)
    k = self.kernel_size
    logits = nn.Conv(1, (k, k), padding='SAME', dtype=self.dtype, name='conv')(pooled)
    return nn.sigmoid(logits)


class CBAM(nn.Module):
  """Channel then spatial attention: F'' = Ms(F') * F', F' = Mc(F) * F."""
  reduction: int = 16
  kernel_size: int = 7
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x * ChannelAttention(self.reduction, self.dtype, name='channel')(x)
    return x * SpatialAttention(self.kernel_size, self.dtype, name='spatial')(x)
