"""The CPU convolution path equals XLA's convolution in values and gradients."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax import models
from dahjax.models import conv
from tests.conftest import random_images


def rand(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@pytest.mark.parametrize('k', [1, 3, 7])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('size', [8, 7])
def test_depthwise_matches_xla(k, stride, size):
  x, w = rand((2, size, size, 5), 0), rand((k, k, 1, 5), 1)
  ref = jax.lax.conv_general_dilated(
    x,
    w,
    (stride, stride),
    'SAME',
    feature_group_count=5,
    dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
  )
  got = jax.jit(lambda x, w: conv.depthwise_conv(x, w, stride, 'slices'))(x, w)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
  probe = rand(ref.shape, 2)
  loss = lambda impl: lambda x, w: jnp.sum(conv.depthwise_conv(x, w, stride, impl) * probe)
  g_got = jax.grad(loss('slices'), argnums=(0, 1))(x, w)
  g_ref = jax.grad(loss('xla'), argnums=(0, 1))(x, w)
  for a, b in zip(g_got, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_pointwise_matches_xla():
  x, w = rand((2, 4, 4, 6), 0), rand((1, 1, 6, 3), 1)
  for impl in ('xla', 'slices'):
    np.testing.assert_allclose(
      conv.pointwise_conv(x, w, impl),
      np.einsum('bhwc,cf->bhwf', x, w[0, 0]),
      rtol=1e-5,
      atol=1e-5,
    )
  grads = [
    jax.grad(lambda w, impl=impl: jnp.sum(conv.pointwise_conv(x, w, impl) ** 2))(w)
    for impl in ('xla', 'slices')
  ]
  np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)


def test_resolve_impl():
  assert conv.resolve_impl('auto') == (
    'slices' if jax.default_backend() == 'cpu' else 'xla'
  )
  with pytest.raises(ValueError, match='auto, xla, slices'):
    conv.resolve_impl('winograd')


def test_dah_model_same_under_both_impls():
  """Same parameters, same outputs and gradients: checkpoints move between backends."""
  x = jnp.asarray(random_images(3))
  fast = models.create_model('dah_resnet30', bits=8, conv_impl='slices')
  native = models.create_model('dah_resnet30', bits=8, conv_impl='xla')
  variables = jax.jit(fast.init)(jax.random.key(0), x)
  assert jax.tree.structure(variables) == jax.tree.structure(
    jax.eval_shape(native.init, jax.random.key(0), x)
  )

  def loss(params, model):
    out, _ = model.apply(
      {**variables, 'params': params}, x, train=True, mutable=['batch_stats']
    )
    return jnp.sum(out['hash'] * jnp.arange(8)) + jnp.sum(out['logits'][:, 0])

  values = [
    jax.jit(jax.value_and_grad(loss), static_argnums=1)(variables['params'], m)
    for m in (fast, native)
  ]
  np.testing.assert_allclose(values[0][0], values[1][0], rtol=1e-4)
  # Gradients are compared per tensor by norm: through 30 layers with BatchNorm over 3
  # images, float32 rounding in another order moves single elements by several percent
  # (how much depends on the CPU), while a wrong operation would move whole tensors.
  flat = []
  for a, b in zip(jax.tree.leaves(values[0][1]), jax.tree.leaves(values[1][1])):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    assert np.linalg.norm(a - b) <= 5e-2 * np.linalg.norm(b) + 1e-6
    flat.append((a, b))
  a, b = (np.concatenate(parts) for parts in zip(*flat))
  assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.9999


@pytest.mark.parametrize(
  'k,stride,padding',
  [
    (1, 1, 'VALID'),
    (1, 2, 'VALID'),
    (1, 2, 'SAME'),
    (3, 1, ((1, 1), (1, 1))),
    (3, 2, ((1, 1), (1, 1))),
    (7, 2, ((3, 3), (3, 3))),
    (3, 1, 'SAME'),
  ],
)
def test_conv2d_matches_xla(k, stride, padding):
  x, w = rand((2, 9, 9, 4), 0), rand((k, k, 4, 6), 1)
  pads = conv.explicit_padding(padding, (9, 9), k, stride)
  ref = jax.lax.conv_general_dilated(
    x, w, (stride, stride), pads, dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )
  fn = lambda impl: jax.jit(
    lambda x, w: conv.conv2d(x, w, strides=stride, padding=padding, impl=impl)
  )
  np.testing.assert_allclose(fn('slices')(x, w), ref, rtol=1e-5, atol=1e-5)
  probe = rand(ref.shape, 2)
  grads = [
    jax.grad(lambda x, w, f=fn(impl): jnp.sum(f(x, w) * probe), argnums=(0, 1))(x, w)  # noqa: B008
    for impl in ('slices', 'xla')
  ]
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
  'window,stride,padding',
  [
    (3, 1, ((1, 1), (1, 1))),
    (3, 2, ((1, 1), (1, 1))),
    (2, 2, 'VALID'),
    (3, 2, 'SAME'),
    (3, 2, ((0, 1), (0, 1))),  # Caffe's ceil mode (DSH's CNN).
    (5, 3, ((2, 1), (0, 2))),  # Windows spanning two phases, uneven padding.
    (2, 3, 'VALID'),  # Stride above the window: cells no window reads.
  ],
)
@pytest.mark.parametrize('size', [(9, 9), (8, 11)])
def test_max_pool_matches_xla_with_ties(window, stride, padding, size):
  """Values and gradients equal XLA's, ties included (ReLU outputs tie at 0 a lot)."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(np.maximum(rng.integers(-3, 3, size=(2, *size, 3)), 0), jnp.float32)
  pads = conv.explicit_padding(padding, size, window, stride)
  ref = nn.max_pool(x, (window, window), (stride, stride), pads)
  got = jax.jit(lambda x: conv.max_pool(x, window, stride, padding, 'slices'))(x)
  np.testing.assert_array_equal(got, ref)
  probe = rand(ref.shape, 1)
  g_ref = jax.grad(
    lambda x: jnp.sum(nn.max_pool(x, (window, window), (stride, stride), pads) * probe)
  )(x)
  g_got = jax.grad(
    lambda x: jnp.sum(conv.max_pool(x, window, stride, padding, 'slices') * probe)
  )(x)
  np.testing.assert_allclose(g_got, g_ref, rtol=1e-6, atol=1e-6)


def test_conv_module_params_equal_flax_conv():
  """conv.Conv holds the parameters nn.Conv holds and computes what it computes."""
  x = rand((2, 8, 8, 3), 0)
  ours = conv.Conv(5, 3, strides=2, padding=((1, 1), (1, 1)), use_bias=True)
  flax_conv = nn.Conv(5, (3, 3), strides=2, padding=((1, 1), (1, 1)))
  variables = flax_conv.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(
    jnp.shape, variables
  )
  variables = jax.tree.map(lambda v: v + 0.1, variables)  # A nonzero bias.
  np.testing.assert_allclose(
    ours.apply(variables, x), flax_conv.apply(variables, x), rtol=1e-5, atol=1e-5
  )


def _flags_after_configure(env_flags):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  if env_flags is not None:
    env['XLA_FLAGS'] = env_flags
  code = (
    'import os; from dahjax.models import conv; print(conv.configure_cpu_backend());'
    'print(os.environ.get("XLA_FLAGS"))'
  )
  out = subprocess.run(
    [sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True
  ).stdout.split('\n')
  return out[0], out[1]


def test_configure_cpu_backend_sets_flag_once_and_respects_users():
  active, flags = _flags_after_configure('--xla_force_host_platform_device_count=2')
  assert active == 'True'
  assert flags.split() == ['--xla_force_host_platform_device_count=2', conv.CPU_XLA_FLAG]
  mine = '--xla_cpu_experimental_ynn_fusion_type=individual_dot'
  active, flags = _flags_after_configure(mine)
  assert active == 'False' and flags == mine
