"""DSH's CNN against Caffe's layer definitions written out in NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax import models
from dahjax.models import dsh_cnn


def caffe_pool(x, kind):
  """Caffe's 3x3 / stride 2 pooling without padding: out = ceil((H - 3) / 2) + 1 per axis,
  the last window cut at the edge (max over, and average by, the cells present)."""
  n, h, w, c = x.shape
  oh, ow = -(-(h - 3) // 2) + 1, -(-(w - 3) // 2) + 1
  out = np.zeros((n, oh, ow, c))
  for i in range(oh):
    for j in range(ow):
      window = x[:, 2 * i : min(2 * i + 3, h), 2 * j : min(2 * j + 3, w)]
      out[:, i, j] = window.max((1, 2)) if kind == 'max' else window.mean((1, 2))
  return out


def caffe_within_channel_lrn(x, alpha=5e-5, beta=0.75):
  """x (1 + alpha / 9 sum of squares over the zero-padded 3x3 neighbourhood)^-beta."""
  sq = np.pad(x**2, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = x.shape[1:3]
  total = sum(sq[:, di : di + h, dj : dj + w] for di in range(3) for dj in range(3))
  return x * (1 + alpha / 9 * total) ** (-beta)


@pytest.mark.parametrize('kind', ['max', 'avg'])
@pytest.mark.parametrize('size', [32, 8, 4])
def test_ceil_pool_matches_caffe(kind, size):
  x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32) * 3
  want = caffe_pool(x, kind)
  for impl in ('xla', 'slices') if kind == 'max' else ('auto',):
    got = dsh_cnn.ceil_pool(jnp.asarray(x), kind, impl)
    assert got.shape == want.shape == (2, size // 2, size // 2, 3)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_max_pool_gradient_is_the_same_for_both_implementations():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 4)), jnp.float32)
  grads = [
    jax.grad(lambda x, i=impl: jnp.sum(dsh_cnn.ceil_pool(x, 'max', i) ** 2))(x)
    for impl in ('xla', 'slices')
  ]
  np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


def test_within_channel_lrn_matches_caffe():
  x = np.random.default_rng(2).normal(size=(2, 6, 5, 3)) * 200
  got = dsh_cnn.within_channel_lrn(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, caffe_within_channel_lrn(x), rtol=1e-5)


def test_within_channel_lrn_gradient_matches_the_power_form():
  """exp(-beta log1p(alpha m)) differentiates as (1 + alpha m)^(-beta) does."""
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 6, 5, 3)) * 200, jnp.float32)
  probe = jnp.asarray(np.random.default_rng(4).normal(size=x.shape), jnp.float32)

  def power_form(x):
    mean_sq = jax.lax.reduce_window(x**2, 0.0, jax.lax.add, (1, 3, 3, 1), (1,) * 4, 'SAME')
    return x * (1.0 + 5e-5 * mean_sq / 9) ** (-0.75)

  want = jax.grad(lambda x: jnp.sum(power_form(x) * probe))(x)
  got = jax.grad(lambda x: jnp.sum(dsh_cnn.within_channel_lrn(x) * probe))(x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dsh_net_parameters_outputs_and_codes():
  net = models.create_model('dsh_cnn', bits=12, num_classes=10)
  variables = net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  shapes = {k: v['kernel'].shape for k, v in variables['params'].items()}
  assert shapes == {
    'conv1': (5, 5, 3, 32),
    'conv2': (5, 5, 32, 32),
    'conv3': (5, 5, 32, 64),
    'fc500': (4 * 4 * 64, 500),  # Ceil-mode pooling: 32 -> 16 -> 8 -> 4.
    'hash': (500, 12),
    'classifier': (500, 10),
  }
  # Caffe's xavier filler: uniform on +-sqrt(3 / fan_in); biases 0.
  kernel = np.asarray(variables['params']['conv2']['kernel'])
  bound = np.sqrt(3 / (5 * 5 * 32))
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
  assert not np.any(np.asarray(variables['params']['fc500']['bias']))
  images = jax.random.uniform(jax.random.key(1), (3, 32, 32, 3))
  outputs = net.apply(variables, images)
  assert outputs['hash'].shape == (3, 12) and outputs['logits'].shape == (3, 10)
  codes = net.binary_codes(outputs['hash'])
  np.testing.assert_array_equal(codes, np.asarray(outputs['hash']) >= 0)
