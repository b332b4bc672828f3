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
  variables = jax.eval_shape(
    lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)))
  )
  return sum(np.prod(x.shape) for x in jax.tree.leaves(variables['params']))


def test_dah_parameter_count_matches_paper():
  """The paper: 87.48% fewer parameters than ResNet50's 25.56M, about 3.2M."""
  n = count_params(models.create_model('dah_resnet30', bits=48, num_classes=10))
  print(f'DAH ResNet30 (48 bits, 10 classes): {n:,} parameters')
  assert 2.8e6 <= n <= 3.6e6
  none = count_params(
    models.create_model('dah_resnet30', bits=48, num_classes=10, attention='none')
  )
  # CBAM on 64, 256 and 512 channels: 2 MLPs each plus a 7x7x2 conv.
  cbam = sum(2 * c * (c // 16) + c // 16 + c + 7 * 7 * 2 + 1 for c in (64, 256, 512))
  assert n - none == cbam


@pytest.mark.parametrize('attention_name', ['cbam', 'none'])
def test_dah_outputs(attention_name):
  model = models.create_model(
    'dah_resnet30', bits=12, num_classes=10, attention=attention_name
  )
  x = jnp.asarray(random_images(4))
  variables = model.init(jax.random.key(0), x)
  out, updates = jax.jit(
    lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats'])
  )(variables, x)
  assert out['hash'].shape == (4, 12) and out['logits'].shape == (4, 10)
  assert jnp.all(out['hash'] > 0.25) and jnp.all(out['hash'] < 0.75)
  assert 'batch_stats' in updates
  codes = model.binary_codes(out['hash'])
  assert codes.dtype == jnp.uint8
  np.testing.assert_array_equal(codes, np.asarray(out['hash']) > 0.5)


def test_shrink_sigmoid_and_threshold():
  x = jnp.array([-50.0, -1.0, 0.0, 1.0, 50.0])
  np.testing.assert_allclose(
    heads.shrink_sigmoid(x),
    0.25 + 1 / (2 * (1 + np.exp(-np.array(x, np.float64)))),
    rtol=1e-6,
  )
  np.testing.assert_array_equal(
    heads.shrink_sigmoid_codes(jnp.array([0.4, 0.5, 0.6])), [0, 0, 1]
  )


def test_cbam_matches_formula():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 5, 32)), jnp.float32)
  module = attention.CBAM()
  variables = module.init(jax.random.key(1), x)
  got = module.apply(variables, x)
  p = variables['params']
  mlp = lambda v: (
    nn.relu(v @ p['channel']['mlp_in']['kernel'] + p['channel']['mlp_in']['bias'])
    @ p['channel']['mlp_out']['kernel']
    + p['channel']['mlp_out']['bias']
  )
  mc = jax.nn.sigmoid(mlp(x.mean((1, 2))) + mlp(x.max((1, 2))))[:, None, None]
  f1 = x * mc
  pooled = jnp.concatenate([f1.mean(-1, keepdims=True), f1.max(-1, keepdims=True)], -1)
  conv = (
    jax.lax.conv_general_dilated(
      pooled,
      p['spatial']['conv']['kernel'],
      (1, 1),
      'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
    )
    + p['spatial']['conv']['bias']
  )
  np.testing.assert_allclose(got, f1 * jax.nn.sigmoid(conv), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  'kwargs,match',
  [
    (dict(bits=0), 'positive integer'),
    (dict(bits=-3), 'positive integer'),
  ],
)
def test_bad_bits(kwargs, match):
  with pytest.raises(ValueError, match=match):
    models.create_model('dah_resnet30', **kwargs)


def test_unknown_model_and_attention():
  with pytest.raises(
    ValueError, match="Unknown model 'resnet99'.*dah_resnet30, dpfah_resnet18"
  ):
    models.create_model('resnet99')
  with pytest.raises(ValueError, match='cbam, none'):
    models.create_model('dah_resnet30', attention='se')


def numpy_pfa(x, lam=1e-4):
  """PFA (DPFAH eqs. 6-9, with SimAM's n = H*W - 1) written out per image and channel
  with NumPy loops, in float64."""
  x = np.asarray(x, np.float64)
  out = np.empty_like(x)
  b, h, w, c = x.shape
  n = h * w - 1
  for i in range(b):
    for ch in range(c):
      v = x[i, :, :, ch]
      mu = v.mean()
      var = ((v - mu) ** 2).sum() / n
      e_inv = (v - mu) ** 2 / (4 * (var + lam)) + 0.5
      out[i, :, :, ch] = v / (1 + np.exp(-e_inv))
  return out


@pytest.mark.parametrize('lam', [1e-4, 0.5])
def test_pfa_matches_formula(lam):
  x = np.random.default_rng(0).normal(size=(2, 5, 4, 3)).astype(np.float32)
  got = jax.jit(lambda x: attention.pfa(x, lam))(x)
  np.testing.assert_allclose(got, numpy_pfa(x, lam), rtol=1e-5, atol=1e-6)


def test_pfa_constant_channel_and_bad_shape():
  # A constant channel has zero variance: e_inv = 1/2 everywhere, PFA = x * sigmoid(1/2).
  x = jnp.full((1, 3, 3, 2), 2.0)
  np.testing.assert_allclose(attention.pfa(x), 2.0 * jax.nn.sigmoid(0.5), rtol=1e-6)
  with pytest.raises(ValueError, match='at least 2 positions'):
    attention.pfa(jnp.ones((1, 1, 1, 4)))


TORCHVISION_RESNET18_BACKBONE = 11_176_512  # torchvision resnet18 without its fc layer.


@pytest.mark.parametrize('stem,size', [('imagenet', 64), ('cifar', 32)])
def test_resnet18_pfa_placements(stem, size):
  """PFA adds no parameters; each placement changes the output; shapes per stem."""
  x = jnp.asarray(random_images(2, size=size))
  outs, counts = {}, {}
  variables = None
  for placement in ('stem', 'every_block', 'none'):
    model = models.create_model(
      'dpfah_resnet18', bits=16, num_classes=7, stem=stem, attention=placement
    )
    if variables is None:
      variables = jax.jit(model.init)(jax.random.key(0), x)
    counts[placement] = count_params(model, size)
    outs[placement] = jax.jit(model.apply)(variables, x)
    assert outs[placement]['hash'].shape == (2, 16)
    assert outs[placement]['logits'].shape == (2, 7)
    assert outs[placement]['features'].shape == (2, 512)
  heads_params = 512 * 16 + 16 + 512 * 7 + 7
  stem_delta = 0 if stem == 'imagenet' else 3 * 3 * 3 * 64 - 7 * 7 * 3 * 64
  assert set(counts.values()) == {TORCHVISION_RESNET18_BACKBONE + stem_delta + heads_params}
  for a, b in (('stem', 'none'), ('every_block', 'none'), ('stem', 'every_block')):
    assert not np.allclose(outs[a]['hash'], outs[b]['hash'])


def test_resnet18_codes_and_bad_options():
  model = models.create_model('dpfah_resnet18', bits=4, num_classes=3)
  np.testing.assert_array_equal(
    model.binary_codes(jnp.array([[-0.1, 0.0, 0.2, -3.0]])), [[0, 1, 1, 0]]
  )
  with pytest.raises(ValueError, match='imagenet, cifar'):
    models.create_model('dpfah_resnet18', stem='tiny')
  with pytest.raises(ValueError, match='stem, every_block, none'):
    models.create_model('dpfah_resnet18', attention='cbam')
  with pytest.raises(ValueError, match='model.hash_norm .*none, batchnorm'):
    models.create_model('dpfah_resnet18', hash_norm='layernorm')


def test_resnet18_hash_batchnorm_centres_each_bit():
  """hash_norm='batchnorm': in training every bit of u has batch mean 0 and variance 1
  (before BatchNorm's scale and bias, 1 and 0 at initialisation); when encoding it
  applies the running statistics; 'none' is the paper's Dense layer alone."""
  x = jnp.asarray(random_images(16, size=32))
  plain = models.create_model('dpfah_resnet18', bits=8, num_classes=3, stem='cifar')
  normed = models.create_model(
    'dpfah_resnet18', bits=8, num_classes=3, stem='cifar', hash_norm='batchnorm'
  )
  variables = normed.init(jax.random.key(0), x)
  assert set(variables['params']['head']) == {'hash', 'hash_bn', 'classifier'}
  out, updates = normed.apply(variables, x, train=True, mutable=['batch_stats'])
  u = np.asarray(out['hash'])
  np.testing.assert_allclose(u.mean(axis=0), 0.0, atol=1e-4)
  np.testing.assert_allclose(u.var(axis=0), 1.0, rtol=1e-3)

  def without_norm(v):  # The same parameters and statistics but the norm's.
    return {
      'params': {
        **v['params'],
        'head': {k: p for k, p in v['params']['head'].items() if k != 'hash_bn'},
      },
      'batch_stats': {k: b for k, b in v['batch_stats'].items() if k != 'head'},
    }

  # Training: the Dense layer's u, as the plain model gives it, standardised per bit.
  raw, _ = plain.apply(without_norm(variables), x, train=True, mutable=['batch_stats'])
  raw = np.asarray(raw['hash'])
  np.testing.assert_allclose(u, (raw - raw.mean(0)) / np.sqrt(raw.var(0) + 1e-5), atol=2e-4)
  stats = updates['batch_stats']['head']['hash_bn']
  np.testing.assert_allclose(stats['mean'], 0.1 * raw.mean(0), rtol=1e-3, atol=1e-6)
  # Encoding: the running statistics, not the batch's.
  updated = {**variables, **updates}
  enc = np.asarray(jax.jit(normed.apply)(updated, x)['hash'])
  raw_enc = np.asarray(jax.jit(plain.apply)(without_norm(updated), x)['hash'])
  mean, var = np.asarray(stats['mean']), np.asarray(stats['var'])
  np.testing.assert_allclose(enc, (raw_enc - mean) / np.sqrt(var + 1e-5), atol=2e-4)
  assert np.abs(enc.mean(0)).max() > 0.05  # Not the batch's own centring.


def test_centered_classifier_input_is_an_affine_reparameterisation():
  """Reading 4 (h - 1/2) with weights W and bias b gives the logits of reading h with
  4 W and b - 2 sum_k W_k: the same classifiers, only their parameterisation differs."""
  features = jnp.asarray(np.random.default_rng(0).normal(size=(5, 16)), jnp.float32)
  centered = heads.ShrinkSigmoidHashHead(bits=6, num_classes=3, classifier_input='centered')
  params = centered.init(jax.random.key(1), features)
  out = centered.apply(params, features)
  w = params['params']['classifier']['kernel']
  b = params['params']['classifier']['bias']
  plain = heads.ShrinkSigmoidHashHead(bits=6, num_classes=3)
  moved = jax.tree.map(lambda x: x, params)
  moved['params']['classifier'] = {'kernel': 4 * w, 'bias': b - 2 * w.sum(axis=0)}
  again = plain.apply(moved, features)
  np.testing.assert_allclose(again['hash'], out['hash'], rtol=0, atol=0)
  np.testing.assert_allclose(again['logits'], out['logits'], rtol=1e-5, atol=1e-5)
  h = np.asarray(out['hash'])
  np.testing.assert_allclose(out['logits'], (4 * (h - 0.5)) @ w + b, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='classifier_input.*codes, centered'):
    models.create_model('dah_resnet30', classifier_input='scaled')


@pytest.mark.parametrize(
  'activation,reads',
  [('none', 'features'), ('shrink_sigmoid', 'codes'), ('none', 'sign_codes')],
)
def test_parallel_head_gives_each_method_its_head(activation, reads):
  """DPFAH's head (the classifier beside the hash layer), DAH's (shrink sigmoid, the
  classifier on its output) and GreedyHash's (a bias-free classifier on sgn(u), whose
  gradient passes straight through to u), against numpy on the head's own weights."""
  head = heads.ParallelHashHead(
    bits=6, num_classes=4, activation=activation, classifier_reads=reads
  )
  features = jax.random.normal(jax.random.key(1), (5, 8))
  variables = head.init(jax.random.key(0), features)
  out = head.apply(variables, features)
  p = jax.tree.map(np.asarray, variables['params'])
  f = np.asarray(features, np.float64)
  u = f @ p['hash']['kernel'] + p['hash']['bias']
  h = 0.25 + 0.5 / (1 + np.exp(-u)) if activation == 'shrink_sigmoid' else u
  np.testing.assert_allclose(out['hash'], h, rtol=1e-5, atol=1e-6)
  seen = {'features': f, 'codes': h, 'sign_codes': np.where(u >= 0, 1.0, -1.0)}[reads]
  logits = seen @ p['classifier']['kernel'] + p['classifier'].get('bias', 0.0)
  np.testing.assert_allclose(out['logits'], logits, rtol=1e-5, atol=1e-5)
  assert ('bias' in p['classifier']) == (reads != 'sign_codes')
  if reads == 'sign_codes':  # Straight through: d(sum of logits)/du = W 1.
    grad = jax.grad(lambda v: head.apply(v, features)['logits'].sum())(variables)['params'][
      'hash'
    ]['bias']
    np.testing.assert_allclose(grad, 5 * p['classifier']['kernel'].sum(axis=1), rtol=1e-5)


def test_resnet18_takes_dah_and_greedyhash_heads():
  dah = models.create_model(
    'dpfah_resnet18',
    bits=4,
    num_classes=3,
    stem='cifar',
    hash_activation='shrink_sigmoid',
    classifier_reads='codes',
  )
  # DAH's codes: h > 1/2, not sign(h) (every h is positive).
  np.testing.assert_array_equal(
    dah.binary_codes(jnp.array([[0.3, 0.5, 0.6, 0.74]])), [[0, 0, 1, 1]]
  )
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  variables = jax.eval_shape(dah.init, jax.random.key(0), x)
  assert variables['params']['head']['classifier']['kernel'].shape == (4, 3)
  greedy = models.create_model(
    'dpfah_resnet18', bits=4, num_classes=3, stem='cifar', classifier_reads='sign_codes'
  )
  variables = jax.eval_shape(greedy.init, jax.random.key(0), x)
  assert set(variables['params']['head']['classifier']) == {'kernel'}
  with pytest.raises(
    ValueError, match='model.classifier_reads .*features, codes, sign_codes'
  ):
    models.create_model('dpfah_resnet18', classifier_reads='hash')
  with pytest.raises(ValueError, match='model.hash_activation .*none, shrink_sigmoid'):
    models.create_model('dpfah_resnet18', hash_activation='tanh')


@pytest.mark.parametrize('activation', ['shrink_sigmoid', 'linear'])
def test_dah_head_with_a_classifier_on_the_sign_codes(activation):
  """classifier_input='sign_codes': logits = b W with b the +-1 codes (the sign of the
  pre-activation, whose bits are the head's codes), no bias, gradient straight through."""
  head = heads.ShrinkSigmoidHashHead(
    bits=6, num_classes=4, activation=activation, classifier_input='sign_codes'
  )
  features = jax.random.normal(jax.random.key(1), (5, 8))
  variables = head.init(jax.random.key(0), features)
  out = head.apply(variables, features)
  p = jax.tree.map(np.asarray, variables['params'])
  pre = np.asarray(features, np.float64) @ p['hash']['kernel'] + p['hash']['bias']
  b = np.where(pre >= 0, 1.0, -1.0)
  model = models.create_model(
    'dah_resnet30', bits=6, hash_layer=activation, classifier_input='sign_codes'
  )
  np.testing.assert_array_equal(model.binary_codes(out['hash']), b > 0)
  np.testing.assert_allclose(out['logits'], b @ p['classifier']['kernel'], atol=1e-5)
  assert set(p['classifier']) == {'kernel'}
  grad = jax.grad(lambda v: head.apply(v, features)['logits'].sum())(variables)
  expected = 5 * p['classifier']['kernel'].sum(axis=1)
  np.testing.assert_allclose(grad['params']['hash']['bias'], expected, rtol=1e-5)
