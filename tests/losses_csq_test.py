"""CSQ's loss against its per-image, per-bit form written from the paper, and its hash centres
against the Hadamard property."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import csq
from tests import loss_checks


def loop_center(labels_i, centers, tie):
  """Bit r of image i's 0/1 centre: the sign of its labels' centres' sum (their centroid,
  binarised), the tie bit where the sum is 0."""
  c, k = centers.shape
  bits = []
  for r in range(k):
    vote = sum(float(labels_i[j]) * float(centers[j, r]) for j in range(c))
    bits.append(1.0 if vote > 0 else 0.0 if vote < 0 else float(tie[r]))
  return bits


def loop_csq_loss(u, labels, lambda_q=0.05, quantization='square'):
  """mean over images i and bits r of the binary cross-entropy of (tanh(u_ir) + 1) / 2
  against c_ir, plus lambda_q times the mean per-bit quantization of |tanh(u_ir)| - 1."""
  n, k = u.shape
  centers = csq.csq_centers(bits=k, num_classes=labels.shape[1])
  tie = csq._tie_bits(k)
  center_total, quant_total = 0.0, 0.0
  for i in range(n):
    target = loop_center(np.asarray(labels[i]), centers, tie)
    for r in range(k):
      h = (jnp.tanh(u[i, r]) + 1.0) / 2.0
      center_total = center_total - (
        target[r] * jnp.log(h) + (1.0 - target[r]) * jnp.log(1.0 - h)
      )
      gap = jnp.abs(jnp.tanh(u[i, r])) - 1.0
      quant_total = quant_total + (
        gap**2 if quantization == 'square' else jnp.log(jnp.cosh(gap))
      )
  return (center_total + lambda_q * quant_total) / (n * k)


def batch(seed, k=8, c=5, multi_label=False):
  u, labels = loss_checks.random_batch(
    seed, n=6, k=k, c=c, multi_label=multi_label, label_rate=0.45
  )
  if multi_label:
    labels = labels.at[0].set(0.0)  # An image without a label: every bit a tie.
  return u, labels


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('k, c', [(8, 5), (12, 4)])  # Hadamard centres, then random ones.
@pytest.mark.parametrize('kwargs', [{}, {'lambda_q': 0.5, 'quantization': 'log_cosh'}])
def test_csq_loss_matches_loop(multi_label, k, c, kwargs):
  u, labels = batch(0, k=k, c=c, multi_label=multi_label)
  loss_checks.assert_matches_loop(
    lambda u: csq.csq_loss(outputs={'hash': u}, labels=labels, **kwargs)[0],
    lambda u: loop_csq_loss(u, labels, **kwargs),
    u,
  )


def test_csq_terms_sum_to_the_loss_and_centres_pull_the_codes():
  u, labels = batch(1)
  loss, aux = csq.csq_loss(outputs={'hash': u}, labels=labels)
  np.testing.assert_allclose(loss, aux['center'] + aux['quantization'], rtol=1e-6)
  centers = csq.csq_centers(bits=8, num_classes=5)
  on_centre = jnp.asarray(3.0 * (labels @ centers))  # Each code at its own centre's signs.
  near, _ = csq.csq_loss(outputs={'hash': on_centre}, labels=labels)
  far, _ = csq.csq_loss(outputs={'hash': -on_centre}, labels=labels)
  assert float(near) < 0.01 < 1.0 < float(far)


@pytest.mark.parametrize('bits', [1, 2, 4, 8, 16, 32, 64])
def test_csq_hadamard_centres_are_at_least_half_the_bits_apart(bits):
  for c in sorted({1, 2, bits, 2 * bits} | ({bits + 1} if bits > 1 else set())):
    centers = csq.csq_centers(bits=bits, num_classes=c)
    assert centers.shape == (c, bits) and centers.dtype == np.float32
    assert set(np.unique(centers)) <= {-1.0, 1.0}
    for i, j in itertools.combinations(range(c), 2):
      assert np.sum(centers[i] != centers[j]) >= bits / 2
  h = csq.csq_centers(bits=bits, num_classes=bits)
  np.testing.assert_array_equal(h @ h.T, bits * np.eye(bits))  # Rows of a Hadamard matrix.
  both = csq.csq_centers(bits=bits, num_classes=2 * bits)
  np.testing.assert_array_equal(both[bits:], -both[:bits])  # [H_k; -H_k].


@pytest.mark.parametrize('bits, c', [(12, 10), (48, 10), (16, 40), (64, 200)])
def test_csq_random_centres_are_fixed_bernoulli_codes(bits, c):
  centers = csq.csq_centers(bits=bits, num_classes=c)
  assert centers.shape == (c, bits)
  assert set(np.unique(centers)) == {-1.0, 1.0}
  np.testing.assert_array_equal(centers, csq.csq_centers(bits=bits, num_classes=c))
  d = (bits - centers @ centers.T) / 2
  mean = d[~np.eye(c, dtype=bool)].mean()
  assert abs(mean - bits / 2) < 0.1 * bits  # Bernoulli(1/2) bits: k/2 apart on average.
  assert d[~np.eye(c, dtype=bool)].min() >= 1  # No two classes share a centre.


def test_csq_multi_label_centre_is_the_binarised_centroid_with_fixed_ties():
  centers = csq.csq_centers(bits=4, num_classes=8)  # Rows of H_4, then of -H_4.
  labels = jnp.array(
    [
      [1, 1, 1, 0, 0, 0, 0, 0],  # Three centres: their majority, bit by bit.
      [1, 0, 0, 0, 1, 0, 0, 0],  # A centre and its negation: every bit a tie.
      [0, 0, 0, 0, 0, 0, 0, 0],  # No label: every bit a tie.
      [0, 0, 0, 1, 0, 0, 0, 0],  # One label: its centre.
    ]
  )
  targets = np.asarray(csq.csq_targets(labels=labels, centers=centers))
  majority = np.sign(centers[0] + centers[1] + centers[2])
  np.testing.assert_array_equal(targets[0], (majority + 1) / 2)
  np.testing.assert_array_equal(targets[1], csq._tie_bits(4))
  np.testing.assert_array_equal(targets[2], csq._tie_bits(4))
  np.testing.assert_array_equal(targets[3], (centers[3] + 1) / 2)


@pytest.mark.parametrize('quantization', csq.QUANTIZATIONS)
@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4, -1e4])
def test_csq_loss_finite_at_edges(quantization, value):
  u = jnp.full((4, 16), value, jnp.float32)
  labels = jnp.eye(3)[jnp.array([0, 1, 2, 0])]
  fn = lambda u: csq.csq_loss(
    outputs={'hash': u}, labels=labels, quantization=quantization
  )[0]
  loss_checks.assert_finite(fn, u)


def test_csq_refuses_an_unknown_quantization_and_an_empty_code():
  u, labels = batch(2)
  with pytest.raises(ValueError, match='quantization'):
    csq.csq_loss(outputs={'hash': u}, labels=labels, quantization='cube')
  with pytest.raises(ValueError, match='bits=0'):
    csq.csq_centers(bits=0, num_classes=3)
