"""IDHN's loss against its pairwise form written pair by pair from the soft similarity."""

import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import idhn
from tests import loss_checks


def cosine(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  norms = math.sqrt(a @ a) * math.sqrt(b @ b)
  return float(a @ b / norms) if norms > 0 else 0.0


def loop_idhn_loss(u, labels, beta=5.0, gamma=0.1, alpha=0.1):
  """mean over pairs i != j of the cross-entropy (hard pairs: s < 0.01 or s > 0.99) or
  gamma k ((h_i . h_j + k) / (2 k) - s)^2 (soft pairs), h = softsign(u), s the labels'
  cosine, plus alpha times the mean over bits of | |h| - 1 |."""
  n, k = u.shape
  h = u / (1.0 + jnp.abs(u))
  pair_total = 0.0
  for i, j in itertools.permutations(range(n), 2):
    s = cosine(labels[i], labels[j])
    ip = jnp.dot(h[i], h[j])
    if s < 0.01 or s > 0.99:
      theta = beta * ip / k
      pair_total = pair_total + jnp.log1p(jnp.exp(theta)) - s * theta
    else:
      pair_total = pair_total + gamma * k * ((ip + k) / (2 * k) - s) ** 2
  quant = sum(jnp.abs(jnp.abs(h[i, r]) - 1.0) for i in range(n) for r in range(k))
  return pair_total / (n * (n - 1)) + alpha * quant / (n * k)


def batch(seed, multi_label=False):
  u, labels = loss_checks.random_batch(
    seed, c=4, scale=1.5, multi_label=multi_label, label_rate=0.5
  )
  if multi_label:
    labels = labels.at[0].set(0.0)  # No label: dissimilar to every image.
    labels = labels.at[1:3].set(jnp.array([1.0, 1, 0, 0]))  # Two with the same labels...
    labels = labels.at[3].set(jnp.array([1.0, 0, 0, 0]))  # ... one with half (s = 0.71).
  return u, labels


def test_soft_similarity_is_the_labels_cosine():
  _, labels = batch(0, multi_label=True)
  s = np.asarray(idhn.soft_similarity(labels))
  want = [[cosine(a, b) for b in labels] for a in labels]
  np.testing.assert_allclose(s, want, rtol=1e-6, atol=1e-7)
  soft = (s > 0.01) & (s < 0.99)
  assert soft.any() and (~soft).any()  # The multi-label batch has both kinds of pair.


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'beta': 2.0, 'gamma': 0.5, 'alpha': 0.3}])
def test_idhn_loss_matches_loop(multi_label, kwargs):
  u, labels = batch(1, multi_label=multi_label)
  loss_checks.assert_matches_loop(
    lambda u: idhn.idhn_loss(outputs={'hash': u}, labels=labels, **kwargs)[0],
    lambda u: loop_idhn_loss(u, labels, **kwargs),
    u,
  )


def test_idhn_terms_sum_to_the_loss_and_soft_pairs_use_the_squared_error():
  u, labels = batch(2, multi_label=True)
  loss, aux = idhn.idhn_loss(outputs={'hash': u}, labels=labels)
  np.testing.assert_allclose(loss, aux['pairs'] + aux['quantization'], rtol=1e-6)
  _, no_soft = idhn.idhn_loss(outputs={'hash': u}, labels=labels, gamma=0.0)
  assert float(no_soft['pairs']) < float(aux['pairs'])  # gamma weighs the soft pairs.


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4, -1e4])
def test_idhn_loss_finite_at_edges(value):
  u = jnp.full((4, 12), value, jnp.float32)
  labels = jnp.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]], jnp.float32)
  loss_checks.assert_finite(
    lambda u: idhn.idhn_loss(outputs={'hash': u}, labels=labels)[0], u
  )
