"""Convolutions and max pooling with a CPU fast path.

With `impl='slices'`, depthwise convolutions, 1x1 convolutions and max pooling are
computed from shifted, strided slices of the input and matrix products; with
`impl='xla'` they are XLA's native operations; `impl='auto'` picks 'slices' on the CPU
and 'xla' elsewhere. Parameters are identical under every `impl` (Flax's names and HWIO
layout), so a checkpoint trained with one runs with the other.

Why and how: docs/design.md, section dahjax/models/conv.py.
"""

from collections.abc import Sequence
import functools
import os
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp

IMPLS = ('auto', 'xla', 'slices')


conv_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')

_DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')

# Switches XLA's YNNPACK path off for CPU convolutions only; dots keep YNNPACK. Why:
# docs/design.md, section dahjax/models/conv.py.
CPU_XLA_FLAG = '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'

Padding = str | Sequence[tuple[int, int]]


def resolve_impl(impl: str) -> str:
  """Returns 'xla' or 'slices' for `impl`: 'auto' is 'slices' on the CPU, else 'xla'.

  Raises:
    ValueError: `impl` is not one of `IMPLS`.
  """
  if impl not in IMPLS:
    raise ValueError(f'Unknown conv_impl {impl!r}; valid: {", ".join(IMPLS)}.')
  if impl == 'auto':
    return 'slices' if jax.default_backend() == 'cpu' else 'xla'
  return impl


def configure_cpu_backend(enable: bool = True) -> bool:
  """Adds `CPU_XLA_FLAG` to XLA_FLAGS; returns whether it is in effect.

  XLA reads its flags once, when JAX starts its first backend, so this must run before
  any JAX computation; later it only logs a warning. It changes nothing on GPUs and TPUs.
  A flag of the same name already in XLA_FLAGS is left as the user set it.
  """
  flags = os.environ.get('XLA_FLAGS', '')
  name = CPU_XLA_FLAG.split('=')[0]
  if not enable or name in flags:
    return CPU_XLA_FLAG in flags.split()
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top

  if xla_bridge.backends_are_initialized():
    logging.warning(
      'JAX has already started; %s takes effect only when set before '
      'the first JAX computation (or in XLA_FLAGS).',
      CPU_XLA_FLAG,
    )
    return False
  os.environ['XLA_FLAGS'] = f'{flags} {CPU_XLA_FLAG}'.strip()
  return True


def explicit_padding(
  padding: Padding, size: tuple[int, int], kernel: int, stride: int
) -> tuple[tuple[int, int], tuple[int, int]]:
  """((top, bottom), (left, right)) of 'SAME', 'VALID' or explicit pairs."""
  if isinstance(padding, str):
    if padding == 'VALID':
      return (0, 0), (0, 0)
    if padding != 'SAME':
      raise ValueError(
        f"padding must be 'SAME', 'VALID' or ((t, b), (l, r)), got {padding!r}."
      )
    pads = []
    for n in size:
      out = -(-n // stride)
      total = max((out - 1) * stride + kernel - n, 0)
      pads.append((total // 2, total - total // 2))
    return tuple(pads)
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _windows(x: jax.Array, kernel: int, stride: int, padding):
  """The kernel*kernel shifted, strided views of padded `x`, row-major by tap."""
  (pt, pb), (pl, pr) = explicit_padding(padding, x.shape[1:3], kernel, stride)
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  ho = (xp.shape[1] - kernel) // stride + 1
  wo = (xp.shape[2] - kernel) // stride + 1
  return [
    xp[
      :, dy : dy + (ho - 1) * stride + 1 : stride, dx : dx + (wo - 1) * stride + 1 : stride
    ]
    for dy in range(kernel)
    for dx in range(kernel)
  ]


def conv2d(
  x: jax.Array,
  kernel: jax.Array,
  *,
  strides: int = 1,
  padding: Padding = 'SAME',
  impl: str = 'auto',
) -> jax.Array:
  """Convolution of NHWC `x` with an HWIO kernel [k, k, C_in, C_out] (square kernels)."""
  k = kernel.shape[0]
  impl = resolve_impl(impl)
  if impl == 'slices' and k == 1:
    (pt, pb), (pl, pr) = explicit_padding(padding, x.shape[1:3], 1, strides)
    x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))[:, ::strides, ::strides]
    return jnp.einsum('bhwc,cf->bhwf', x, kernel[0, 0])
  pads = explicit_padding(padding, x.shape[1:3], k, strides)
  return jax.lax.conv_general_dilated(
    x, kernel, (strides, strides), pads, dimension_numbers=_DIMENSION_NUMBERS
  )


def depthwise_conv(
  x: jax.Array, kernel: jax.Array, stride: int, impl: str, padding: Padding = 'SAME'
) -> jax.Array:
  """Depthwise convolution of NHWC `x` with an HWIO kernel [k, k, 1, C]."""
  k = kernel.shape[0]
  if resolve_impl(impl) == 'xla':
    pads = explicit_padding(padding, x.shape[1:3], k, stride)
    return jax.lax.conv_general_dilated(
      x,
      kernel,
      (stride, stride),
      pads,
      feature_group_count=x.shape[-1],
      dimension_numbers=_DIMENSION_NUMBERS,
    )
  out = None
  for tap, window in enumerate(_windows(x, k, stride, padding)):
    term = window * kernel[tap // k, tap % k, 0]
    out = term if out is None else out + term
  return out


def pointwise_conv(x: jax.Array, kernel: jax.Array, impl: str) -> jax.Array:
  """1x1 convolution of NHWC `x` with an HWIO kernel [1, 1, C, F]."""
  return conv2d(x, kernel, strides=1, padding='VALID', impl=impl)


def _pool_geometry(shape, window: int, stride: int, padding):
  """(output height, output width, cells per phase along H, along W) of a pooling."""
  (pt, pb), (pl, pr) = padding
  ho = (shape[1] + pt + pb - window) // stride + 1
  wo = (shape[2] + pl + pr - window) // stride + 1
  reach = -(-window // stride)  # Phase cells a window spans along each axis.
  return ho, wo, ho + reach - 1, wo + reach - 1


def _phase_pads(shape, stride: int, padding, n1: int, n2: int):
  """lax.pad widths taking NHWC `shape` to [B, stride * n1, stride * n2, C]: the
  pooling's padding in front, whatever the phase grid needs (or crops) behind."""
  (pt, _), (pl, _) = padding
  return (
    (0, 0, 0),
    (pt, stride * n1 - shape[1] - pt, 0),
    (pl, stride * n2 - shape[2] - pl, 0),
    (0, 0, 0),
  )


def _tap_offsets(window: int, stride: int):
  """For each tap (dy, dx) of a window, row-major: (dy // stride, dy % stride,
  dx // stride, dx % stride), its offset and phase along H and W."""
  return [
    (*divmod(dy, stride), *divmod(dx, stride))
    for dy in range(window)
    for dx in range(window)
  ]


def _phase_taps(x, window: int, stride: int, padding):
  """The window*window taps of a pooling, row-major, as unit-stride slices of x's
  phases: x padded with -inf and viewed as [B, n1, stride, n2, stride, C], so that
  tap (dy, dx) of output (i, j) is phase (dy % stride, dx % stride) at
  (i + dy // stride, j + dx // stride)."""
  ho, wo, n1, n2 = _pool_geometry(x.shape, window, stride, padding)
  pads = _phase_pads(x.shape, stride, padding, n1, n2)
  p = jax.lax.pad(x, jnp.array(-jnp.inf, x.dtype), pads)
  p = p.reshape(x.shape[0], n1, stride, n2, stride, x.shape[3])
  return [
    p[:, qy : qy + ho, ry, qx : qx + wo, rx]
    for qy, ry, qx, rx in _tap_offsets(window, stride)
  ]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_slices(x, window, stride, padding):
  return functools.reduce(jnp.maximum, _phase_taps(x, window, stride, padding))


def _max_pool_fwd(x, window, stride, padding):
  out = _max_pool_slices(x, window, stride, padding)
  return out, (x, out)


def _max_pool_bwd(window, stride, padding, residuals, g):
  x, out = residuals
  ho, wo, n1, n2 = _pool_geometry(x.shape, window, stride, padding)
  # Computed once: left to fusion, the cotangent's whole producer (e.g. a normalisation's
  # backward pass) is recomputed inside every tap's scatter.
  g = jax.lax.optimization_barrier(g)
  # The gradient of each window goes to its first maximum, as XLA's select-and-scatter
  # rule does: argmax (a reduction) finds that tap once.
  taps = _phase_taps(x, window, stride, padding)
  first = jnp.argmax(jnp.stack([t == out for t in taps]), axis=0).astype(jnp.int8)
  # Each tap's share lands in its phase at its offset: stride*stride arrays the size of
  # the output, interleaved into x's shape once at the end. (Scattering every tap into
  # a strided view of the whole input writes window*window input-sized arrays.)
  zero = jnp.zeros((), g.dtype)
  phases = {}
  for t, (qy, ry, qx, rx) in enumerate(_tap_offsets(window, stride)):
    share = jnp.where(first == t, g, zero)
    share = jax.lax.pad(
      share, zero, ((0, 0, 0), (qy, n1 - ho - qy, 0), (qx, n2 - wo - qx, 0), (0, 0, 0))
    )
    phases[ry, rx] = phases[ry, rx] + share if (ry, rx) in phases else share
  empty = jnp.zeros((x.shape[0], n1, n2, x.shape[3]), g.dtype)
  rows = [
    jnp.stack([phases.get((ry, rx), empty) for rx in range(stride)], axis=3)
    for ry in range(stride)
  ]
  grid = jnp.stack(rows, axis=2).reshape(x.shape[0], stride * n1, stride * n2, -1)
  crop = [(-lo, -hi, 0) for lo, hi, _ in _phase_pads(x.shape, stride, padding, n1, n2)]
  return (jax.lax.pad(grid, zero, crop),)


_max_pool_slices.defvjp(_max_pool_fwd, _max_pool_bwd)


def batch_norm(train: bool, dtype: Any = jnp.float32) -> Any:
  """nn.BatchNorm with torchvision's settings (its momentum 0.1 is Flax's 0.9, eps 1e-5):
  the batch's statistics in training, the running ones otherwise. Call the result with
  the usual BatchNorm arguments (e.g. `name`) to make a layer."""
  return functools.partial(
    nn.BatchNorm,
    use_running_average=not train,
    momentum=0.9,
    epsilon=1e-5,
    dtype=dtype,
  )


def max_pool(
  x: jax.Array, window: int, stride: int, padding: Padding, impl: str = 'auto'
) -> jax.Array:
  """window x window max pooling of NHWC `x`; padded cells never win."""
  if resolve_impl(impl) == 'xla':
    pads = explicit_padding(padding, x.shape[1:3], window, stride)
    return nn.max_pool(x, (window, window), (stride, stride), pads)
  return _max_pool_slices(
    x, window, stride, explicit_padding(padding, x.shape[1:3], window, stride)
  )


class Conv(nn.Module):
  """k x k convolution (square kernel) with parameters `kernel` [k, k, C_in, F], `bias`."""

  features: int
  kernel_size: int
  strides: int = 1
  padding: Padding = 'SAME'
  use_bias: bool = False
  impl: str = 'auto'
  dtype: Any = jnp.float32
  kernel_init: Any = conv_init

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param(
      'kernel', self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32
    )
    y = conv2d(
      x.astype(self.dtype),
      kernel.astype(self.dtype),
      strides=self.strides,
      padding=self.padding,
      impl=self.impl,
    )
    if self.use_bias:
      y = y + self.param(
        'bias', nn.initializers.zeros, (self.features,), jnp.float32
      ).astype(self.dtype)
    return y


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
    return depthwise_conv(
      x.astype(self.dtype), kernel.astype(self.dtype), self.strides, self.impl
    )


class PointwiseConv(nn.Module):
  """1x1 convolution without bias (kernel [1, 1, C, F])."""

  features: int
  impl: str = 'auto'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
      'kernel', conv_init, (1, 1, x.shape[-1], self.features), jnp.float32
    )
    return pointwise_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.impl)
