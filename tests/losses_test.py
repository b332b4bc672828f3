"""Tests of dahjax.losses against a plain loop over pairs."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax import losses


def loop_dah_hash_loss(codes, labels, threshold=None, phi1=1.0, phi2=1.0):
  """W of DAH eq. 6 written pair by pair, straight from the paper's formulas."""
  b, k = codes.shape
  t = k / 4.8 if threshold is None else threshold
  total = 0.0
  for i, j in itertools.permutations(range(b), 2):
    similar = jnp.dot(labels[i], labels[j]) > 0
    d = jnp.abs(codes[i] - codes[j])
    w1 = jnp.where(similar, jnp.sum((codes[i] - codes[j]) ** 2),
                   jnp.abs(t + jnp.sum(jnp.log(1 - d))))
    w2 = (jnp.sum(codes[i] - 0.5) + jnp.sum(codes[j] - 0.5)) ** 2
    total = total + phi1 * w1 + phi2 * w2
  return total / (b * (b - 1))


def random_batch(seed, b=6, k=12, c=3, multi_label=False):
  rng = np.random.default_rng(seed)
  codes = 0.25 + 0.5 / (1 + np.exp(-rng.normal(size=(b, k)) * 2))
  if multi_label:
    labels = (rng.random((b, c)) < 0.4).astype(np.float32)
  else:
    labels = np.eye(c, dtype=np.float32)[rng.integers(0, c, size=b)]
  return jnp.asarray(codes, jnp.float32), jnp.asarray(labels)


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('threshold,phi1,phi2', [(None, 1.0, 1.0), (3.0, 0.5, 2.0)])
def test_dah_hash_loss_matches_loop(multi_label, threshold, phi1, phi2):
  codes, labels = random_batch(0, multi_label=multi_label)
  fn = jax.jit(lambda c, l: losses.dah_hash_loss(
      codes=c, similarity=losses.pairwise_similarity(l), threshold=threshold,
      phi1=phi1, phi2=phi2))
  got = fn(codes, labels)
  want = loop_dah_hash_loss(codes, labels, threshold, phi1, phi2)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  g_got = jax.grad(fn)(codes, labels)
  g_want = jax.grad(loop_dah_hash_loss)(codes, labels, threshold, phi1, phi2)
  np.testing.assert_allclose(g_got, g_want, rtol=1e-4, atol=1e-6)


def test_pairwise_similarity_multi_label():
  labels = jnp.array([[1, 0, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
  want = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(losses.pairwise_similarity(labels), want)


def test_dah_loss_total_is_ce_plus_hash_terms():
  codes, labels = random_batch(1)
  logits = jnp.asarray(np.random.default_rng(2).normal(size=(6, 3)), jnp.float32)
  loss, aux = jax.jit(lambda o, l: losses.dah_loss(outputs=o, labels=l))(
      {'hash': codes, 'logits': logits}, labels)
  ce = -np.mean(np.sum(np.asarray(labels) * np.asarray(jax.nn.log_softmax(logits)), 1))
  np.testing.assert_allclose(aux['ce'], ce, rtol=1e-5)
  np.testing.assert_allclose(aux['w1'] + aux['w2'],
                             loop_dah_hash_loss(codes, labels), rtol=1e-5)
  np.testing.assert_allclose(loss, ce + aux['w1'] + aux['w2'], rtol=1e-5)


@pytest.mark.parametrize('value', [0.25, 0.5, 0.75, 0.2500001, 0.7499999])
def test_dah_loss_finite_at_edges(value):
  """Identical codes and codes at the ends of (1/4, 3/4) keep loss and gradients finite."""
  codes = jnp.full((4, 8), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  fn = lambda c: losses.dah_hash_loss(codes=c, similarity=losses.pairwise_similarity(
      labels))
  assert np.isfinite(fn(codes))
  assert np.all(np.isfinite(jax.grad(fn)(codes)))
  # Opposite ends: |d| reaches 1/2, where log(1 - d) = log(1/2) is still finite.
  ends = jnp.array([[0.25] * 8, [0.75] * 8, [0.25] * 8, [0.75] * 8])
  assert np.isfinite(fn(ends)) and np.all(np.isfinite(jax.grad(fn)(ends)))


def test_dah_terms_known_values():
  # Two dissimilar 1-bit codes 0.25 and 0.75: W1 = |1/4.8 + log(1/2)|, W2 = 0.
  codes = jnp.array([[0.25], [0.75]])
  s = jnp.zeros((2, 2))
  w1 = losses.dah_similarity_term(codes=codes, similarity=s)
  np.testing.assert_allclose(w1[0, 1], abs(1 / 4.8 + np.log(0.5)), rtol=1e-6)
  np.testing.assert_allclose(losses.dah_balance_term(codes=codes)[0, 1], 0.0, atol=1e-7)
  # Similar: squared distance 1/4.
  w1 = losses.dah_similarity_term(codes=codes, similarity=jnp.ones((2, 2)))
  np.testing.assert_allclose(w1[0, 1], 0.25, rtol=1e-6)


def test_off_diagonal_mean_ignores_diagonal():
  m = jnp.array([[100.0, 1.0], [3.0, 100.0]])
  np.testing.assert_allclose(losses.off_diagonal_mean(m), 2.0)
  with pytest.raises(ValueError, match='at least 2'):
    losses.off_diagonal_mean(jnp.ones((1, 1)))


def test_unknown_loss_lists_valid_names():
  with pytest.raises(ValueError, match="Unknown loss 'nope'.*dah"):
    losses.get_loss('nope')
