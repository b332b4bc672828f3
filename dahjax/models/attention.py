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
  """CBAM's channel attention: sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))).

  One MLP C -> C/r -> C (ReLU in between) is shared by the two pooled descriptors.

  Attributes:
    reduction: r, the MLP's reduction ratio (CBAM's 16; DAH does not change it).
    dtype: computation dtype (parameters stay float32).

  Returns from `__call__(x)` (x [B, H, W, C]) the channel weights [B, 1, 1, C] in (0, 1).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import attention
    >>> x = jax.ShapeDtypeStruct((2, 8, 8, 32), jnp.float32)
    >>> module = attention.ChannelAttention()
    >>> variables = jax.eval_shape(module.init, jax.random.key(0), x)
    >>> print(jax.eval_shape(module.apply, variables, x).shape)
    (2, 1, 1, 32)

  References:
    Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018, Sec. 3.
  """

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
  """CBAM's spatial attention: sigmoid(conv7x7([mean_c(x); max_c(x)])).

  Attributes:
    kernel_size: size of the square convolution over the two pooled maps.
    dtype: computation dtype (parameters stay float32).
    conv_impl: 'auto', 'xla' or 'slices' (see `conv`).

  Returns from `__call__(x)` (x [B, H, W, C]) the spatial weights [B, H, W, 1] in (0, 1).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import attention
    >>> x = jax.ShapeDtypeStruct((2, 8, 8, 32), jnp.float32)
    >>> module = attention.SpatialAttention()
    >>> variables = jax.eval_shape(module.init, jax.random.key(0), x)
    >>> print(jax.eval_shape(module.apply, variables, x).shape)
    (2, 8, 8, 1)

  References:
    Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018, Sec. 3.
  """

  kernel_size: int = 7
  dtype: jnp.dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pooled = jnp.concatenate(
      [jnp.mean(x, axis=-1, keepdims=True), jnp.max(x, axis=-1, keepdims=True)], axis=-1
    )
    logits = conv.Conv(
      1,
      self.kernel_size,
      use_bias=True,
      impl=self.conv_impl,
      dtype=self.dtype,
      kernel_init=nn.initializers.lecun_normal(),
      name='conv',
    )(pooled)
    return nn.sigmoid(logits)


class CBAM(nn.Module):
  """CBAM, DAH's attention: channel then spatial attention, F'' = Ms(F') * F'.

  F' = Mc(F) * F with `ChannelAttention` Mc, then `SpatialAttention` Ms weighs F'. DAH
  puts one CBAM before each of the three stages of its ResNet30.

  Attributes:
    reduction: reduction ratio of the channel attention's MLP.
    kernel_size: size of the spatial attention's convolution.
    dtype: computation dtype (parameters stay float32).
    conv_impl: 'auto', 'xla' or 'slices' (see `conv`).

  Returns from `__call__(x)` (x [B, H, W, C]) the refined features, same shape.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import attention
    >>> x = jax.ShapeDtypeStruct((2, 8, 8, 32), jnp.float32)
    >>> cbam = attention.CBAM()
    >>> variables = jax.eval_shape(cbam.init, jax.random.key(0), x)
    >>> print(jax.eval_shape(cbam.apply, variables, x).shape)
    (2, 8, 8, 32)
    >>> print(sum(p.size for p in jax.tree.leaves(variables)))  # MLP 32-2-32, 7x7 conv
    261

  References:
    Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018, Sec. 3.

    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.A and Table 1.
  """

  reduction: int = 16
  kernel_size: int = 7
  dtype: jnp.dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x * ChannelAttention(self.reduction, self.dtype, name='channel')(x)
    return x * SpatialAttention(
      self.kernel_size, self.dtype, self.conv_impl, name='spatial'
    )(x)


def pfa(x: jax.Array, lam: float = 1e-4) -> jax.Array:
  """Computes DPFAH's parameter-free attention (PFA, i.e. SimAM) of NHWC `x`.

  Per image and channel, over the n + 1 = H * W positions:
  mu = mean(x), var = sum((x - mu)^2) / n,
  e_inv = (x - mu)^2 / (4 (var + lam)) + 1/2, and PFA(x) = x * sigmoid(e_inv).
  e_inv is 1 / e* of the paper's eq. 8, the inverse of each neuron's minimal energy.

  The paper's eq. 8 writes its mean and variance as sums of M - 1 terms divided by M;
  they are taken as SimAM's own implementation takes them: the mean over all M = H * W
  positions and the squared deviations summed over all positions, divided by M - 1.
  The paper gives no value for lambda; 1e-4 is SimAM's. Statistics are computed in
  float32 also for bfloat16 inputs.

  Args:
    x: activations [B, H, W, C] with H * W >= 2.
    lam: the regulariser lambda.

  Returns:
    `x` weighted by sigmoid(e_inv), same shape and dtype.

  Raises:
    ValueError: H * W < 2.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from dahjax.models import attention
    >>> x = jnp.array([1.0, 2.0, 3.0, 6.0]).reshape(1, 2, 2, 1)
    >>> print(np.round(np.asarray(attention.pfa(x)).ravel(), 4))
    [0.6713 1.2699 1.8674 4.3652]

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, "PFA module", eqs. 4-9.

    Yang et al., "SimAM: A Simple, Parameter-Free Attention Module for Convolutional
    Neural Networks", ICML 2021.
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
