"""DHN's loss against its pairwise form written pair by pair."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import dhn
from tests import loss_checks


def loop_dhn_loss(u, labels, lam=None, scale=1.0):
  """sum over ordered pairs i != j of [log(1 + exp(theta_ij)) - s_ij theta_ij
  + lam sum_k (log cosh(|z_ik| - 1) + log cosh(|z_jk| - 1))], z = tanh(u),
  theta = scale <z_i, z_j>, divided by the number of pairs B (B - 1)."""
  n, k = u.shape
  lam = 0.05 / k if lam is None else lam
  z = jnp.tanh(u)
  total = 0.0
  for i, j in itertools.permutations(range(n), 2):
    theta = scale * jnp.dot(z[i], z[j])
    s = (jnp.dot(labels[i], labels[j]) > 0).astype(jnp.float32)
    q = jnp.sum(jnp.log(jnp.cosh(jnp.abs(z[i]) - 1))) + jnp.sum(
      jnp.log(jnp.cosh(jnp.abs(z[j]) - 1))
    )
    total = total + jnp.log1p(jnp.exp(theta)) - s * theta + lam * q
  return total / (n * (n - 1))


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'lam': 0.3, 'scale': 0.5}])
def test_dhn_loss_matches_loop(multi_label, kwargs):
  u, labels = loss_checks.random_batch(0, scale=1.5, multi_label=multi_label)
  loss_checks.assert_matches_loop(
    lambda u, l: dhn.dhn_loss(outputs={'hash': u}, labels=l, **kwargs)[0],
    lambda u, l: loop_dhn_loss(u, l, **kwargs),
    u,
    labels,
  )


def test_dhn_terms_sum_to_the_loss_and_the_default_lambda_is_per_bit():
  u, labels = loss_checks.random_batch(1, scale=1.5)
  loss, aux = dhn.dhn_loss(outputs={'hash': u}, labels=labels)
  np.testing.assert_allclose(loss, aux['likelihood'] + aux['quantization'], rtol=1e-6)
  _, explicit = dhn.dhn_loss(outputs={'hash': u}, labels=labels, lam=0.05 / u.shape[1])
  np.testing.assert_allclose(explicit['quantization'], aux['quantization'], rtol=1e-6)
  # 2 lam k mean_{i,k} log cosh(|z| - 1) = 0.1 mean_{i,k} (DeepHash-pytorch's alpha).
  per_bit = jnp.mean(jnp.log(jnp.cosh(jnp.abs(jnp.tanh(u)) - 1)))
  np.testing.assert_allclose(aux['quantization'], 0.1 * per_bit, rtol=1e-5)


def test_dhn_quantization_vanishes_for_saturated_codes():
  u = jnp.array([[30.0, -30.0], [-30.0, 30.0], [30.0, 30.0]])
  labels = jnp.eye(2)[jnp.array([0, 1, 1])]
  _, aux = dhn.dhn_loss(outputs={'hash': u}, labels=labels, lam=1.0)
  assert float(aux['quantization']) < 1e-6


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4, -1e4])
def test_dhn_loss_finite_at_edges(value):
  u = jnp.full((4, 12), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  loss_checks.assert_finite(
    lambda u: dhn.dhn_loss(outputs={'hash': u}, labels=labels)[0], u
  )


def test_dhn_refuses_a_batch_without_pairs():
  with pytest.raises(ValueError, match='at least 2'):
    dhn.dhn_loss(outputs={'hash': jnp.ones((1, 4))}, labels=jnp.ones((1, 2)))
