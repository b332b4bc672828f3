"""Tests of the DAH network, its attention and its hash layer."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax import models
from dahjax.models import attention
from dahjax.models import heads
from tests.conftest import random_images


def count_params(model, size=32):
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                jnp.zeros((1, size, size, 3))))
  return sum(np.prod(x.shape) for x in jax.tree.leaves(variables['params']))


def test_dah_parameter_count_matches_paper():
  """The paper: 87.48% fewer parameters than ResNet50's 25.56M, about 3.2M."""
  n = count_params(models.create_model('dah_resnet30', bits=48, num_classes=10))
  print(f'DAH ResNet30 (48 bits, 10 classes): {n:,} parameters')
  assert 2.8e6 <= n <= 3.6e6
  none = count_params(models.create_model('dah_resnet30', bits=48, num_classes=10,
                                          attention='none'))
  # CBAM on 64, 256 and 512 channels: 2 MLPs each plus a 7x7x2 conv.
  cbam = sum(2 * c * (c // 16) + c // 16 + c + 7 * 7 * 2 + 1 for c in (64, 256, 512))
  assert n - none == cbam


@pytest.mark.parametrize('attention_name', ['cbam', 'none'])
def test_dah_outputs(attention_name):
  model = models.create_model('dah_resnet30', bits=12, num_classes=10,
                              attention=attention_name)
  x = jnp.asarray(random_images(4))
  variables = model.init(jax.random.key(0), x)
  out, updates = jax.jit(lambda v, x: model.apply(v, x, train=True,
                                                  mutable=['batch_stats']))(variables, x)
  assert out['hash'].shape == (4, 12) and out['logits'].shape == (4, 10)
  assert jnp.all(out['hash'] > 0.25) and jnp.all(out['hash'] < 0.75)
  assert 'batch_stats' in updates
  codes = model.binary_codes(out['hash'])
  assert codes.dtype == jnp.uint8
  np.testing.assert_array_equal(codes, np.asarray(out['hash']) > 0.5)


def test_shrink_sigmoid_and_threshold():
  x = jnp.array([-50.0, -1.0, 0.0, 1.0, 50.0])
  np.testing.assert_allclose(heads.shrink_sigmoid(x),
                             0.25 + 1 / (2 * (1 + np.exp(-np.array(x, np.float64)))),
                             rtol=1e-6)
  np.testing.assert_array_equal(heads.shrink_sigmoid_codes(jnp.array([0.4, 0.5, 0.6])),
                                [0, 0, 1])


def test_cbam_matches_formula():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 5, 32)), jnp.float32)
  module = attention.CBAM()
  variables = module.init(jax.random.key(1), x)
  got = module.apply(variables, x)
  p = variables['params']
  mlp = lambda v: nn.relu(v @ p['channel']['mlp_in']['kernel'] + p['channel']['mlp_in'][
      'bias']) @ p['channel']['mlp_out']['kernel'] + p['channel']['mlp_out']['bias']
  mc = jax.nn.sigmoid(mlp(x.mean((1, 2))) + mlp(x.max((1, 2))))[:, None, None]
  f1 = x * mc
  pooled = jnp.concatenate([f1.mean(-1, keepdims=True), f1.max(-1, keepdims=True)], -1)
  conv = jax.lax.conv_general_dilated(
      pooled, p['spatial']['conv']['kernel'], (1, 1), 'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + p['spatial']['conv']['bias']
  np.testing.assert_allclose(got, f1 * jax.nn.sigmoid(conv), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kwargs,match', [
    (dict(bits=0), 'positive integer'),
    (dict(bits=-3), 'positive integer'),
])
def test_bad_bits(kwargs, match):
  with pytest.raises(ValueError, match=match):
    models.create_model('dah_resnet30', **kwargs)


def test_unknown_model_and_attention():
  with pytest.raises(ValueError, match="Unknown model 'resnet99'.*dah_resnet30"):
    models.create_model('resnet99')
  with pytest.raises(ValueError, match='cbam, none'):
    models.create_model('dah_resnet30', attention='se')
