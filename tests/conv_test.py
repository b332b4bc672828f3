"""The CPU convolution path equals XLA's convolution in values and gradients."""

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
  ref = jax.lax.conv_general_dilated(x, w, (stride, stride), 'SAME',
                                     feature_group_count=5,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
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
    np.testing.assert_allclose(conv.pointwise_conv(x, w, impl),
                               np.einsum('bhwc,cf->bhwf', x, w[0, 0]), rtol=1e-5,
                               atol=1e-5)
  grads = [jax.grad(lambda w, impl=impl: jnp.sum(conv.pointwise_conv(x, w, impl) ** 2))(w)
           for impl in ('xla', 'slices')]
  np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)


def test_resolve_impl():
  assert conv.resolve_impl('auto') == ('slices' if jax.default_backend() == 'cpu'
                                       else 'xla')
  with pytest.raises(ValueError, match='auto, xla, slices'):
    conv.resolve_impl('winograd')


def test_dah_model_same_under_both_impls():
  """Same parameters, same outputs and gradients: checkpoints move between backends."""
  x = jnp.asarray(random_images(3))
  fast = models.create_model('dah_resnet30', bits=8, conv_impl='slices')
  native = models.create_model('dah_resnet30', bits=8, conv_impl='xla')
  variables = jax.jit(fast.init)(jax.random.key(0), x)
  assert (jax.tree.structure(variables) ==
          jax.tree.structure(jax.jit(native.init)(jax.random.key(0), x)))

  def loss(params, model):
    out, _ = model.apply({**variables, 'params': params}, x, train=True,
                         mutable=['batch_stats'])
    return jnp.sum(out['hash'] * jnp.arange(8)) + jnp.sum(out['logits'][:, 0])

  values = [jax.jit(jax.value_and_grad(loss), static_argnums=1)(variables['params'], m)
            for m in (fast, native)]
  np.testing.assert_allclose(values[0][0], values[1][0], rtol=1e-4)
  for a, b in zip(jax.tree.leaves(values[0][1]), jax.tree.leaves(values[1][1])):
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
