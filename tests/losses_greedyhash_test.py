"""GreedyHash's loss and sign layer against their forms written image by image from the paper,
with the straight-through gradient written as the stop-gradient identity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import greedyhash
from tests import loss_checks


def ste_sign(u):
  """sgn(u) forward (sgn(0) = +1), the identity backward: u + stop_gradient(sgn(u) - u)."""
  return u + jax.lax.stop_gradient(jnp.where(u >= 0, 1.0, -1.0) - u)


def model(sign):
  """A bias-free linear classifier on the sign codes, the release's head."""
  return lambda u, w: {'hash': u, 'logits': sign(u) @ w}


def loop_greedyhash_loss(u, w, labels, alpha=0.1):
  """mean over images of -sum_c t_c log softmax(W^T b_i)_c (t: labels spread evenly), plus
  alpha times the mean over bits of | |u| - 1 |^3."""
  n, k = u.shape
  logits = model(ste_sign)(u, w)['logits']
  ce, penalty = 0.0, 0.0
  for i in range(n):
    z = logits[i]
    log_softmax = z - jnp.log(jnp.sum(jnp.exp(z - jnp.max(z)))) - jnp.max(z)
    count = float(np.sum(np.asarray(labels[i])))
    for c in range(labels.shape[1]):
      ce = ce - float(labels[i, c]) / max(count, 1.0) * log_softmax[c]
    for r in range(k):
      penalty = penalty + jnp.abs(jnp.abs(u[i, r]) - 1.0) ** 3
  return ce / n + alpha * penalty / (n * k)


def batch(seed, n=6, k=8, c=4, multi_label=False):
  rng = np.random.default_rng(seed)
  u = rng.normal(size=(n, k)) * 1.5
  w = rng.normal(size=(k, c)) * 0.5
  if multi_label:
    labels = (rng.random((n, c)) < 0.4).astype(np.float32)
    labels[0] = [1, 1, 0, 0][:c]
  else:
    labels = np.eye(c, dtype=np.float32)[rng.integers(0, c, size=n)]
  return jnp.asarray(u, jnp.float32), jnp.asarray(w, jnp.float32), jnp.asarray(labels)


def test_greedy_sign_is_sign_forward_and_identity_backward():
  u = jnp.array([[-2.0, -1e-8, 0.0, 1e-8, 3.0]])
  np.testing.assert_array_equal(greedyhash.greedy_sign(u), [[-1.0, -1.0, 1.0, 1.0, 1.0]])
  weights = jnp.array([[0.5, -2.0, 3.0, 4.0, -5.0]])
  grad = jax.jit(jax.grad(lambda u: jnp.sum(weights * greedyhash.greedy_sign(u))))(u)
  np.testing.assert_array_equal(grad, weights)


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'alpha': 1.0}])
def test_greedyhash_loss_matches_loop(multi_label, kwargs):
  u, w, labels = batch(0, multi_label=multi_label)
  net = model(greedyhash.greedy_sign)
  # Gradients in the codes' network side (through sgn) and in the classifier.
  loss_checks.assert_matches_loop(
    lambda u, w: greedyhash.greedyhash_loss(outputs=net(u, w), labels=labels, **kwargs)[0],
    lambda u, w: loop_greedyhash_loss(u, w, labels, **kwargs),
    u,
    w,
    argnums=(0, 1),
    grad_atol=1e-6,
  )


def test_greedyhash_terms_sum_to_the_loss_and_the_penalty_vanishes_on_codes():
  u, w, labels = batch(1)
  net = model(greedyhash.greedy_sign)
  loss, aux = greedyhash.greedyhash_loss(outputs=net(u, w), labels=labels)
  np.testing.assert_allclose(loss, aux['classification'] + aux['penalty'], rtol=1e-6)
  _, on_codes = greedyhash.greedyhash_loss(outputs=net(jnp.sign(u), w), labels=labels)
  assert float(on_codes['penalty']) == 0.0
  np.testing.assert_allclose(on_codes['classification'], aux['classification'], rtol=1e-6)


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4, -1e4])
def test_greedyhash_loss_finite_at_edges(value):
  u = jnp.full((4, 12), value, jnp.float32)
  w = jnp.full((12, 3), 0.1, jnp.float32)
  labels = jnp.eye(3)[jnp.array([0, 1, 2, 0])]
  net = model(greedyhash.greedy_sign)
  fn = lambda u, w: greedyhash.greedyhash_loss(outputs=net(u, w), labels=labels)[0]
  loss_checks.assert_finite(fn, u, w, argnums=(0, 1))
