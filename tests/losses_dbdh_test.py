"""DBDH's loss against its pairwise form written pair by pair, on sign codes with the
straight-through gradient written as the stop-gradient identity."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import dbdh


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


def batch(seed, n=7, k=6, c=3, multi_label=False):
  rng = np.random.default_rng(seed)
  u = rng.normal(size=(n, k))
  if multi_label:
    labels = (rng.random((n, c)) < 0.4).astype(np.float32)
  else:
    labels = np.eye(c, dtype=np.float32)[rng.integers(0, c, size=n)]
  return jnp.asarray(u, jnp.float32), jnp.asarray(labels)


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'alpha': 1.0, 'p': 1}])
def test_dbdh_loss_matches_loop(multi_label, kwargs):
  u, labels = batch(0, multi_label=multi_label)
  fn = jax.jit(lambda u: dbdh.dbdh_loss(outputs={'hash': u}, labels=labels, **kwargs)[0])
  np.testing.assert_allclose(fn(u), loop_dbdh_loss(u, labels, **kwargs), rtol=1e-5)
  g_got = jax.grad(fn)(u)
  g_want = jax.grad(loop_dbdh_loss)(u, labels, **kwargs)
  np.testing.assert_allclose(g_got, g_want, rtol=1e-4, atol=1e-6)


def test_dbdh_value_depends_on_the_signs_only_and_balanced_codes_cost_nothing():
  u, labels = batch(1)
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
  fn = lambda u: dbdh.dbdh_loss(outputs={'hash': u}, labels=labels)[0]
  assert np.isfinite(float(fn(u)))
  assert np.all(np.isfinite(np.asarray(jax.grad(fn)(u))))
