"""DBDH's loss against its pairwise form written pair by pair, on sign codes with the
straight-through gradient written as the stop-gradient identity."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import dbdh
from tests import loss_checks


def ste_sign(u):
  return u + jax.lax.stop_gradient(jnp.where(u >= 0, 1.0, -1.0) - u)


def loop_dbdh_loss(u, labels, alpha=0.1, p=2):
  """mean over pairs i != j of log(1 + e^Theta) - s Theta, Theta = b_i . b_j / 2, plus alpha
  times the mean over images of |mean_r b_ir|^p, b = sgn(u)."""
  n, k = u.shape
  b = ste_sign(u)
  pair_total = 0.0
  for i, j in itertools.permutations(range(n), 2):
    s = float(np.dot(np.asarray(labels[i]), np.asarray(labels[j])) > 0)
    theta = 0.5 * jnp.dot(b[i], b[j])
    pair_total = pair_total + jnp.log1p(jnp.exp(theta)) - s * theta
  balance = sum(jnp.abs(jnp.sum(b[i]) / k) ** p for i in range(n))
  return pair_total / (n * (n - 1)) + alpha * balance / n


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'alpha': 1.0, 'p': 1}])
def test_dbdh_loss_matches_loop(multi_label, kwargs):
  u, labels = loss_checks.random_batch(0, multi_label=multi_label)
  loss_checks.assert_matches_loop(
    lambda u: dbdh.dbdh_loss(outputs={'hash': u}, labels=labels, **kwargs)[0],
    lambda u: loop_dbdh_loss(u, labels, **kwargs),
    u,
    grad_atol=1e-6,
  )


def test_dbdh_value_depends_on_the_signs_only_and_balanced_codes_cost_nothing():
  u, labels = loss_checks.random_batch(1)
  loss, aux = dbdh.dbdh_loss(outputs={'hash': u}, labels=labels)
  np.testing.assert_allclose(loss, aux['pairs'] + aux['balance'], rtol=1e-6)
  scaled, _ = dbdh.dbdh_loss(outputs={'hash': 7.0 * u}, labels=labels)
  np.testing.assert_allclose(scaled, loss, rtol=1e-6)  # No relaxation: sgn(7 u) = sgn(u).
  balanced = jnp.tile(jnp.array([[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]]), (7, 1))
  _, aux = dbdh.dbdh_loss(outputs={'hash': balanced}, labels=labels)
  assert float(aux['balance']) == 0.0


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4, -1e4])
def test_dbdh_loss_finite_at_edges(value):
  u = jnp.full((4, 48), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  loss_checks.assert_finite(
    lambda u: dbdh.dbdh_loss(outputs={'hash': u}, labels=labels)[0], u
  )
