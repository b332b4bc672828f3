"""DSH's loss against its pairwise form written pair by pair."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from dahjax import losses
from tests import loss_checks


def loop_dsh_loss(b, labels, margin=None, alpha=0.01):
  """Sum over pairs i < j of L_r (DSH eq. 4) divided by N (N - 1), as the authors'
  release normalises it."""
  n, k = b.shape
  m = 2.0 * k if margin is None else margin
  total = 0.0
  for i, j in itertools.combinations(range(n), 2):
    similar = jnp.dot(labels[i], labels[j]) > 0
    d = jnp.sum((b[i] - b[j]) ** 2)
    pair = jnp.where(similar, 0.5 * d, 0.5 * jnp.maximum(m - d, 0.0))
    reg = alpha * (
      jnp.sum(jnp.abs(jnp.abs(b[i]) - 1)) + jnp.sum(jnp.abs(jnp.abs(b[j]) - 1))
    )
    total = total + pair + reg
  return total / (n * (n - 1))


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'margin': 5.0, 'alpha': 0.1}])
def test_dsh_loss_matches_loop(multi_label, kwargs):
  b, labels = loss_checks.random_batch(0, scale=1.5, multi_label=multi_label)
  loss_checks.assert_matches_loop(
    lambda b, l: losses.dsh_loss(outputs={'hash': b}, labels=l, **kwargs)[0],
    lambda b, l: loop_dsh_loss(b, l, **kwargs),
    b,
    labels,
    grad_atol=1e-6,
  )


def test_dsh_terms_sum_to_the_loss_and_margin_matters():
  b, labels = loss_checks.random_batch(1, scale=0.3)  # Dissimilar pairs well inside m = 2k.
  loss, aux = losses.dsh_loss(outputs={'hash': b}, labels=labels)
  np.testing.assert_allclose(loss, aux['pairs'] + aux['reg'], rtol=1e-6)
  small, _ = losses.dsh_loss(outputs={'hash': b}, labels=labels, margin=0.0)
  assert float(small) < float(loss)  # With m = 0 dissimilar pairs cost nothing.


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4])
def test_dsh_loss_finite_at_edges(value):
  b = jnp.full((4, 12), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  loss_checks.assert_finite(
    lambda b: losses.dsh_loss(outputs={'hash': b}, labels=labels)[0], b
  )


def test_loss_kwargs_reads_the_method_settings_and_refuses_unknown_ones():
  config = {'dsh': {'margin': 3.0}, 'dah': {'phi1': 2.0}}
  assert losses.loss_kwargs('dsh', config) == {'margin': 3.0}
  assert losses.loss_kwargs('dpfah', config) == {}
  with pytest.raises(ValueError, match=r"loss\.dsh\.phi1: loss 'dsh' has no such setting"):
    losses.loss_kwargs('dsh', {'dsh': {'phi1': 1.0}})
