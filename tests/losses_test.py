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
    w1 = jnp.where(
      similar, jnp.sum((codes[i] - codes[j]) ** 2), jnp.abs(t + jnp.sum(jnp.log(1 - d)))
    )
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
  fn = jax.jit(
    lambda c, l: losses.dah_hash_loss(
      codes=c,
      similarity=losses.pairwise_similarity(l),
      threshold=threshold,
      phi1=phi1,
      phi2=phi2,
    )
  )
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
    {'hash': codes, 'logits': logits}, labels
  )
  ce = -np.mean(np.sum(np.asarray(labels) * np.asarray(jax.nn.log_softmax(logits)), 1))
  np.testing.assert_allclose(aux['ce'], ce, rtol=1e-5)
  np.testing.assert_allclose(
    aux['w1'] + aux['w2'], loop_dah_hash_loss(codes, labels), rtol=1e-5
  )
  np.testing.assert_allclose(loss, ce + aux['w1'] + aux['w2'], rtol=1e-5)


@pytest.mark.parametrize('value', [0.25, 0.5, 0.75, 0.2500001, 0.7499999])
def test_dah_loss_finite_at_edges(value):
  """Identical codes and codes at the ends of (1/4, 3/4) keep loss and gradients finite."""
  codes = jnp.full((4, 8), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  fn = lambda c: losses.dah_hash_loss(
    codes=c, similarity=losses.pairwise_similarity(labels)
  )
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


def test_balanced_pair_means_match_loop():
  rng = np.random.default_rng(7)
  values = rng.normal(size=(6, 6))
  labels = jnp.eye(3)[jnp.array([0, 0, 1, 2, 2, 2])]
  s = np.asarray(losses.pairwise_similarity(labels))
  similar = [values[i, j] for i, j in itertools.permutations(range(6), 2) if s[i, j]]
  dissimilar = [values[i, j] for i, j in itertools.permutations(range(6), 2) if not s[i, j]]
  got = losses.balanced_pair_means(jnp.asarray(values, jnp.float32), s)
  np.testing.assert_allclose(got, (np.mean(similar), np.mean(dissimilar)), rtol=1e-6)
  # No similar pair: that mean is 0, the other unchanged.
  got = losses.balanced_pair_means(jnp.asarray(values, jnp.float32), np.eye(6))
  np.testing.assert_allclose(got[0], 0.0)
  np.testing.assert_allclose(got[1], values[~np.eye(6, dtype=bool)].mean(), rtol=1e-6)


def test_off_diagonal_mean_ignores_diagonal():
  m = jnp.array([[100.0, 1.0], [3.0, 100.0]])
  np.testing.assert_allclose(losses.off_diagonal_mean(m), 2.0)
  with pytest.raises(ValueError, match='at least 2'):
    losses.off_diagonal_mean(jnp.ones((1, 1)))


def test_unknown_loss_lists_valid_names():
  with pytest.raises(ValueError, match="Unknown loss 'nope'.*dah"):
    losses.get_loss('nope')


def test_dah_loss_in_row_blocks_equals_one_block(monkeypatch):
  """Large batches are computed in blocks of rows; values and gradients do not change."""
  codes, labels = random_batch(3, b=11, k=7, c=3)
  fn = lambda c: losses.dah_hash_loss(
    codes=c, similarity=losses.pairwise_similarity(labels)
  )
  whole = jax.value_and_grad(fn)(codes)
  monkeypatch.setattr(
    losses.pairs, 'BLOCK_ELEMENTS', 3 * 11 * 7
  )  # 3 rows a block, 4 blocks.
  blocked = jax.jit(jax.value_and_grad(fn))(codes)
  np.testing.assert_allclose(blocked[0], whole[0], rtol=1e-6)
  np.testing.assert_allclose(blocked[1], whole[1], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(blocked[0], loop_dah_hash_loss(codes, labels), rtol=1e-5)


def loop_dpfah_loss(
  u,
  logits,
  labels,
  alpha=0.5,
  delta=1.1,
  eta=10.0,
  zeta=0.1,
  sign_pull=0.0,
  hash_weight=1.0,
):
  """DPFAH eqs. 12-15 written pair by pair and item by item, in float64 NumPy
  (`hash_weight` scales L1 + eta L2 + sign_pull L4, L4 DPSH's (u - sgn u)^2 per bit)."""
  u, logits, labels = (np.asarray(a, np.float64) for a in (u, logits, labels))
  b = len(u)
  f = np.clip(u, -1, 1)
  l1 = 0.0
  for i, j in itertools.permutations(range(b), 2):
    s = float(labels[i] @ labels[j] > 0)
    theta = alpha * f[i] @ f[j]
    l1 += np.logaddexp(0.0, theta) - s * theta
  l1 /= b * (b - 1)
  l2 = np.mean(
    [np.sum(np.maximum(-delta - u[i], 0) + np.maximum(u[i] - delta, 0)) for i in range(b)]
  )
  p = 1 / (1 + np.exp(-logits))
  l3 = np.mean(np.sum(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)), axis=1))
  l4 = np.mean([(x - (1.0 if x >= 0 else -1.0)) ** 2 for x in u.ravel()])
  total = hash_weight * (l1 + eta * l2 + sign_pull * l4) + zeta * l3
  return total, (l1, l2, l3) + ((l4,) if sign_pull else ())


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize(
  'kwargs',
  [
    {},
    dict(alpha=1.0, delta=0.9, eta=2.0, zeta=1.0),
    dict(hash_weight=0.3),
    dict(sign_pull=0.5, hash_weight=0.7),
  ],
)
def test_dpfah_loss_matches_loop(multi_label, kwargs):
  rng = np.random.default_rng(4)
  u = jnp.asarray(rng.normal(size=(7, 10)) * 1.2, jnp.float32)  # Some |u| > delta.
  logits = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
  labels = (
    jnp.asarray(rng.random((7, 4)) < 0.4, jnp.float32)
    if multi_label
    else jnp.eye(4)[rng.integers(0, 4, 7)]
  )
  fn = jax.jit(
    lambda u, o: losses.dpfah_loss(
      outputs={'hash': u, 'logits': o}, labels=labels, **kwargs
    )
  )
  loss, aux = fn(u, logits)
  want, terms = loop_dpfah_loss(u, logits, labels, **kwargs)
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  names = ['l1', 'l2', 'l3'] + (['l4'] if kwargs.get('sign_pull') else [])
  assert sorted(aux) == names
  np.testing.assert_allclose([aux[n] for n in names], terms, rtol=1e-5)
  grads = jax.grad(lambda u, o: fn(u, o)[0], argnums=(0, 1))(u, logits)
  ref = jax.grad(lambda u, o: loop_dpfah_loss_jax(u, o, labels, **kwargs), argnums=(0, 1))(
    u, logits
  )
  for g, r in zip(grads, ref):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)


def loop_dpfah_loss_jax(
  u,
  logits,
  labels,
  alpha=0.5,
  delta=1.1,
  eta=10.0,
  zeta=0.1,
  sign_pull=0.0,
  hash_weight=1.0,
):
  """The same loop in jax.numpy, differentiable, for the gradient reference."""
  b = u.shape[0]
  f = jnp.clip(u, -1, 1)
  l1 = 0.0
  for i, j in itertools.permutations(range(b), 2):
    s = (labels[i] @ labels[j] > 0).astype(jnp.float32)
    theta = alpha * f[i] @ f[j]
    l1 = l1 + jnp.logaddexp(0.0, theta) - s * theta
  l1 = l1 / (b * (b - 1))
  l2 = jnp.mean(jnp.sum(jax.nn.relu(-delta - u) + jax.nn.relu(u - delta), axis=1))
  l3 = jnp.mean(
    jnp.sum(
      -(labels * jax.nn.log_sigmoid(logits) + (1 - labels) * jax.nn.log_sigmoid(-logits)),
      axis=1,
    )
  )
  l4 = jnp.mean(jnp.square(u - jnp.where(u >= 0, 1.0, -1.0)))
  return hash_weight * (l1 + eta * l2 + sign_pull * l4) + zeta * l3


@pytest.mark.parametrize('theta', [100.0, 400.0, -400.0])
def test_dpfah_likelihood_no_overflow(theta):
  """|theta| of 100 and more: log(1 + exp(theta)) would overflow; the softplus does not."""
  codes = jnp.ones((2, 1)) * jnp.sqrt(jnp.abs(theta) / 0.5)
  codes = codes.at[1].multiply(jnp.sign(theta))
  for s in (0.0, 1.0):
    similarity = jnp.full((2, 2), s)
    fn = lambda c: losses.dpfah_likelihood_loss(codes=c, similarity=similarity)
    value, grad = jax.value_and_grad(fn)(codes)
    want = np.logaddexp(0.0, theta) - s * theta
    np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(grad))


def test_dpfah_quantization_zero_inside_margin():
  u = jnp.array([[1.1, -1.1, 0.0], [0.5, 2.1, -3.1]])
  # Row 0 sits on the margin: 0. Row 1: (2.1 - 1.1) + (3.1 - 1.1) = 3. Mean 1.5.
  np.testing.assert_allclose(losses.dpfah_quantization_loss(u=u), 1.5, rtol=1e-6)
