"""Convolutions with a CPU fast path.

XLA's CPU backend computes depthwise convolutions and convolution weight gradients far
below its matrix-product speed. On the CPU these modules therefore compute a depthwise
convolution as a sum of k x k shifted, strided slices times per-channel weights, and a
1x1 convolution as a matrix product; both differentiate into the same cheap operations.
Accelerators keep XLA's native convolution. `impl` chooses: 'auto' (slices on the CPU,
XLA elsewhere), 'xla' or 'slices'. Parameters are identical under every `impl`, so a
checkpoint trained with one runs with the other.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

IMPLS = ('auto', 'xla', 'slices')

conv_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')


def resolve_impl(impl: str) -> str:
  if impl not in IMPLS:
    raise ValueError(f'Unknown conv_impl {impl!r}; valid: {", ".join(IMPLS)}.')
  if impl == 'auto':
    return 'slices' if jax.default_backend() == 'cpu' else 'xla'
  return impl


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """XLA's 'SAME' padding (low, high) of one spatial dimension."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int, impl: str) -> jax.Array:
  """Depthwise 'SAME' convolution of NHWC `x` with an HWIO kernel [k, k, 1, C]."""
  k = kernel.shape[0]
  if resolve_impl(impl) == 'xla':
    return jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), 'SAME', feature_group_count=x.shape[-1],
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  _, h, w, _ = x.shape
  (ht, hb), (wl, wr) = same_padding(h, k, stride), same_padding(w, k, stride)
  xp = jnp.pad(x, ((0, 0), (ht, hb), (wl, wr), (0, 0)))
  ho, wo = -(-h // stride), -(-w // stride)
  out = None
  for dy in range(k):
    for dx in range(k):
      tap = xp[:, dy:dy + (ho - 1) * stride + 1:stride,
               dx:dx + (wo - 1) * stride + 1:stride, :] * kernel[dy, dx, 0]
      out = tap if out is None else out + tap
  return out


def pointwise_conv(x: jax.Array, kernel: jax.Array, impl: str) -> jax.Array:
  """1x1 convolution of NHWC `x` with an HWIO kernel [1, 1, C, F]."""
  if resolve_impl(impl) == 'xla':
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), 'VALID',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return jnp.einsum('bhwc,cf->bhwf', x, kernel[0, 0])


class DepthwiseConv(nn.Module):
  """k x k depthwise convolution, 'SAME' padding, no bias (kernel [k, k, 1, C])."""
  kernel_size: int
  strides: int = 1
  impl: str = 'auto'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param('kernel', conv_init, (k, k, 1, x.shape[-1]), jnp.float32)
    return depthwise_conv(x.astype(self.dtype), kernel.astype(self.dtype),
                          self.strides, self.impl)


class PointwiseConv(nn.Module):
  """1x1 convolution without bias (kernel [1, 1, C, F])."""
  features: int
  impl: str = 'auto'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', conv_init, (1, 1, x.shape[-1], self.features),
                        jnp.float32)
    return pointwise_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.impl)
