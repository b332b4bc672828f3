"""LCDSH's loss against its pairwise form written pair by pair."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import lcdsh
from tests import loss_checks


def loop_lcdsh_loss(u, labels, lam=3.0):
  """sum over ordered pairs i != j of log(1 + exp(-s'_ij Theta_ij))
  + lam (sigmoid(Theta_ij) - sigmoid(Phi_ij))^2, s' in {-1, +1}, Theta = 1/2 u_i.u_j,
  Phi = 1/2 b_i.b_j with b = sgn(u) a constant, divided by B (B - 1)."""
  n = u.shape[0]
  b = jax.lax.stop_gradient(jnp.where(u >= 0, 1.0, -1.0))
  total = 0.0
  for i, j in itertools.permutations(range(n), 2):
    s = jnp.where(jnp.dot(labels[i], labels[j]) > 0, 1.0, -1.0)
    theta = 0.5 * jnp.dot(u[i], u[j])
    phi = 0.5 * jnp.dot(b[i], b[j])
    sig = lambda x: 1.0 / (1.0 + jnp.exp(-x))
    total = total + jnp.log1p(jnp.exp(-s * theta)) + lam * (sig(theta) - sig(phi)) ** 2
  return total / (n * (n - 1))


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'lam': 0.5}])
def test_lcdsh_loss_matches_loop(multi_label, kwargs):
  u, labels = loss_checks.random_batch(0, multi_label=multi_label)
  loss_checks.assert_matches_loop(
    lambda u, l: lcdsh.lcdsh_loss(outputs={'hash': u}, labels=l, **kwargs)[0],
    lambda u, l: loop_lcdsh_loss(u, l, **kwargs),
    u,
    labels,
  )


def test_lcdsh_terms_sum_to_the_loss_and_vanish_on_binary_outputs():
  u, labels = loss_checks.random_batch(1)
  loss, aux = lcdsh.lcdsh_loss(outputs={'hash': u}, labels=labels)
  np.testing.assert_allclose(loss, aux['likelihood'] + aux['locality'], rtol=1e-6)
  # Outputs that already are +-1 codes have the codes' pair probabilities: L2 = 0.
  _, binary = lcdsh.lcdsh_loss(outputs={'hash': jnp.sign(u)}, labels=labels)
  assert float(binary['locality']) == 0.0


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4, -1e4])
def test_lcdsh_loss_finite_at_edges(value):
  u = jnp.full((4, 12), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  loss_checks.assert_finite(
    lambda u: lcdsh.lcdsh_loss(outputs={'hash': u}, labels=labels)[0], u
  )
