"""Pairwise hashing losses as pure functions over all pairs of a batch.

Every loss is computed on B x B matrices over the ordered pairs i != j of the batch
(no Python loop over pairs), reads no configuration and is safe under `jax.jit` and
`jax.grad`. Under a data-parallel mesh the batch is one global array, so pairs that
span devices count like any other.

`get_loss(name)` returns a registered total loss: a function of keyword arguments
`outputs` (the model's output dict), `labels` (0/1 [B, C]) and the loss's own
hyper-parameters, returning `(loss, aux)` where `aux` holds each term for logging.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax


def pairwise_similarity(labels_a: jax.Array, labels_b: jax.Array | None = None
                        ) -> jax.Array:
  """S[i, j] = 1 where the label vectors share at least one label, else 0.

  Args:
    labels_a: 0/1 (one-hot or multi-hot) labels [N, C].
    labels_b: 0/1 labels [M, C]; defaults to `labels_a`.

  Returns:
    float32 [N, M] matrix of 0s and 1s.
  """
  labels_b = labels_a if labels_b is None else labels_b
  overlap = jnp.asarray(labels_a, jnp.float32) @ jnp.asarray(labels_b, jnp.float32).T
  return (overlap > 0).astype(jnp.float32)


def off_diagonal_mean(matrix: jax.Array) -> jax.Array:
  """Mean of a square matrix over its off-diagonal entries (the pairs i != j)."""
  n = matrix.shape[0]
  if n < 2:
    raise ValueError(f'Pairwise losses need a batch of at least 2, got {n}.')
  mask = 1.0 - jnp.eye(n, dtype=matrix.dtype)
  return jnp.sum(matrix * mask) / (n * (n - 1))


# Pairwise [rows, B, k] blocks hold at most this many elements (64 MB in float32).
_BLOCK_ELEMENTS = 1 << 24


def _map_row_blocks(fn, rows: jax.Array, *args) -> jax.Array:
  """fn(row_block, *args) over blocks of `rows`, concatenated: bounded memory at any B."""
  n, k = rows.shape
  block = max(1, min(n, _BLOCK_ELEMENTS // max(1, n * k)))
  if block == n:
    return fn(rows, *args)
  blocks = -(-n // block)
  padded = jnp.pad(rows, ((0, blocks * block - n), (0, 0)))
  out = jax.lax.map(lambda r: fn(r, *args), padded.reshape(blocks, block, k))
  return out.reshape(blocks * block, *out.shape[2:])[:n]


@jax.custom_vjp
def _pairwise_log_sum(codes: jax.Array) -> jax.Array:
  """P[i, j] = sum_b log(1 - |x_ib - x_jb|), [B, B], for codes in (1/4, 3/4)."""
  return _map_row_blocks(
      lambda r, x: jnp.sum(jnp.log1p(-jnp.abs(r[:, None, :] - x[None])), axis=-1),
      codes, codes)


def _pairwise_log_sum_fwd(codes):
  return _pairwise_log_sum(codes), codes


def _pairwise_log_sum_bwd(codes, g):
  # dP_ij/dx_ib = -sign(d_ijb) / (1 - |d_ijb|) and dP_ij/dx_jb is its negative, so
  # dx_i = sum_j (g_ij + g_ji) * (-sign(d_ijb) / (1 - |d_ijb|)), computed per block of
  # rows i; autodiff would hold several [B, B, k] arrays (38 GB at B = 8192, k = 48).
  sym = g + g.T

  def block(rows, x):
    r, w = rows[:, :-x.shape[0]], rows[:, -x.shape[0]:]
    diff = r[:, None, :] - x[None]
    return jnp.sum(w[:, :, None] * (-jnp.sign(diff) / (1.0 - jnp.abs(diff))), axis=1)

  # Each block needs its rows of codes and of `sym`: carry them as one array.
  return (_map_row_blocks(block, jnp.concatenate([codes, sym], axis=1), codes),)


_pairwise_log_sum.defvjp(_pairwise_log_sum_fwd, _pairwise_log_sum_bwd)


def squared_distances(codes: jax.Array) -> jax.Array:
  """||x_i - x_j||^2 for all pairs, [B, B], from inner products (no [B, B, k] array)."""
  sq = jnp.sum(jnp.square(codes), axis=-1)
  return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (codes @ codes.T), 0.0)


def dah_similarity_term(*, codes: jax.Array, similarity: jax.Array,
                        threshold: float | None = None) -> jax.Array:
  """DAH's W1 (eqs. 2-3) for all pairs, as a [B, B] matrix.

  W1 = ||x_i - x_j||^2 for similar pairs (S = 1) and
  W1 = |t + sum_b log(1 - |x_ib - x_jb|)| for dissimilar pairs (S = 0).

  Memory is O(B^2) plus bounded blocks: the log term and its gradient are computed over
  blocks of rows, never as a whole [B, B, k] array.

  Args:
    codes: shrink-sigmoid outputs in (1/4, 3/4), [B, k].
    similarity: 0/1 pair similarity [B, B].
    threshold: t; defaults to k / 4.8 as in the paper.

  Returns:
    [B, B] matrix of W1 values (the diagonal is not masked here).

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access 2020.
  """
  k = codes.shape[-1]
  t = k / 4.8 if threshold is None else threshold
  # |d| < 1/2 since codes lie in (1/4, 3/4), so log(1 - |d|) stays finite.
  log_term = jnp.abs(t + _pairwise_log_sum(codes))
  return jnp.where(similarity > 0, squared_distances(codes), log_term)


def dah_balance_term(*, codes: jax.Array) -> jax.Array:
  """DAH's W2 (eq. 4) for all pairs: (sum_b (x_ib - 1/2) + sum_b (x_jb - 1/2))^2, [B, B]."""
  centred = jnp.sum(codes - 0.5, axis=-1)
  return jnp.square(centred[:, None] + centred[None, :])


def dah_hash_loss(*, codes: jax.Array, similarity: jax.Array,
                  threshold: float | None = None, phi1: float = 1.0,
                  phi2: float = 1.0) -> jax.Array:
  """DAH's hash loss W (eq. 6): the mean over pairs i != j of phi1 W1 + phi2 W2.

  The paper's normaliser 1 / A(2n, 2) is 1 / (B (B - 1)) for a batch of B = 2n.

  Args:
    codes: shrink-sigmoid outputs in (1/4, 3/4), [B, k].
    similarity: 0/1 pair similarity [B, B].
    threshold: t of W1; defaults to k / 4.8.
    phi1: weight of the similarity term W1.
    phi2: weight of the bit-balance term W2.

  Returns:
    The scalar W.
  """
  w1 = dah_similarity_term(codes=codes, similarity=similarity, threshold=threshold)
  w2 = dah_balance_term(codes=codes)
  return off_diagonal_mean(phi1 * w1 + phi2 * w2)


def softmax_cross_entropy(*, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy; multi-hot labels are spread evenly over their classes."""
  labels = jnp.asarray(labels, jnp.float32)
  targets = labels / jnp.maximum(jnp.sum(labels, axis=-1, keepdims=True), 1.0)
  return jnp.mean(optax.softmax_cross_entropy(logits, targets))


def dah_loss(*, outputs: dict[str, jax.Array], labels: jax.Array,
             threshold: float | None = None, phi1: float = 1.0, phi2: float = 1.0,
             ce_weight: float = 1.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """DAH's total loss: softmax cross-entropy + phi1 W1 + phi2 W2 (SPEC 2.3).

  A term whose weight is 0 is neither computed nor logged, so the terms can be studied
  one at a time (W1 assumes codes in (1/4, 3/4); an unconstrained layer trained on
  cross-entropy alone would make it undefined).

  Args:
    outputs: model outputs with `hash` [B, k] in (1/4, 3/4) and `logits` [B, C].
    labels: 0/1 labels [B, C].
    threshold: t of W1; defaults to k / 4.8.
    phi1: weight of W1.
    phi2: weight of W2.
    ce_weight: weight of the cross-entropy term.

  Returns:
    `(loss, aux)` with `aux` = {'ce', 'w1', 'w2'}, less the terms of weight 0.
  """
  codes = outputs['hash'].astype(jnp.float32)
  aux = {}
  if ce_weight:
    aux['ce'] = softmax_cross_entropy(logits=outputs['logits'].astype(jnp.float32),
                                      labels=labels)
  if phi1:
    aux['w1'] = off_diagonal_mean(dah_similarity_term(
        codes=codes, similarity=pairwise_similarity(labels), threshold=threshold))
  if phi2:
    aux['w2'] = off_diagonal_mean(dah_balance_term(codes=codes))
  weights = {'ce': ce_weight, 'w1': phi1, 'w2': phi2}
  loss = sum((weights[k] * v for k, v in aux.items()), jnp.zeros((), jnp.float32))
  return loss, aux


def dpfah_likelihood_loss(*, codes: jax.Array, similarity: jax.Array,
                          alpha: float = 0.5) -> jax.Array:
  """DPFAH's L1 (eq. 12): pairwise negative log-likelihood over pairs i != j.

  L1 = mean_{i != j} [log(1 + exp(theta_ij)) - s_ij theta_ij], theta = alpha <c_i, c_j>,
  with log(1 + exp(.)) computed as a softplus, which neither overflows nor loses
  precision for large |theta|.

  Args:
    codes: relaxed codes f(u) = clip(u, -1, 1), [B, l].
    similarity: 0/1 pair similarity [B, B].
    alpha: scale of the inner product (DPSH's 1/2).

  Returns:
    The scalar L1.

  References:
    DPFAH, Scientific Reports 2022, eq. 12; Li et al., "Feature Learning based Deep
    Supervised Hashing with Pairwise Labels" (DPSH), IJCAI 2016.
  """
  theta = alpha * (codes @ codes.T)
  return off_diagonal_mean(jax.nn.softplus(theta) - similarity * theta)


def dpfah_quantization_loss(*, u: jax.Array, delta: float = 1.1) -> jax.Array:
  """DPFAH's L2 (eq. 13): mean_i sum_bits [ReLU(-delta - u) + ReLU(u - delta)] on raw u.

  Zero while every |u| <= delta; pushes the hash layer's outputs back inside the margin.
  """
  margin = jax.nn.relu(-delta - u) + jax.nn.relu(u - delta)
  return jnp.mean(jnp.sum(margin, axis=-1))


def sigmoid_cross_entropy(*, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """DPFAH's L3 (eq. 14): mean_i sum_c sigmoid cross-entropy (multi-label friendly)."""
  return jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(
      logits, jnp.asarray(labels, logits.dtype)), axis=-1))


def dpfah_loss(*, outputs: dict[str, jax.Array], labels: jax.Array, alpha: float = 0.5,
               delta: float = 1.1, eta: float = 10.0, zeta: float = 0.1
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """DPFAH's total loss L = L1 + eta L2 + zeta L3 (eq. 15, SPEC 3.3).

  Args:
    outputs: model outputs with `hash` (raw u) [B, l] and `logits` [B, C].
    labels: 0/1 labels [B, C] (one-hot or multi-hot).
    alpha: inner-product scale of L1.
    delta: margin of L2.
    eta: weight of L2.
    zeta: weight of L3.

  Returns:
    `(loss, aux)` with `aux` = {'l1', 'l2', 'l3'}.
  """
  u = outputs['hash'].astype(jnp.float32)
  l1 = dpfah_likelihood_loss(codes=jnp.clip(u, -1.0, 1.0),
                             similarity=pairwise_similarity(labels), alpha=alpha)
  l2 = dpfah_quantization_loss(u=u, delta=delta)
  l3 = sigmoid_cross_entropy(logits=outputs['logits'].astype(jnp.float32), labels=labels)
  return l1 + eta * l2 + zeta * l3, {'l1': l1, 'l2': l2, 'l3': l3}


_LOSSES: dict[str, Callable[..., tuple[jax.Array, dict[str, jax.Array]]]] = {
    'dah': dah_loss,
    'dpfah': dpfah_loss,
}


def get_loss(name: str) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
  """Returns the registered total loss `name`; raises listing the valid names."""
  if name not in _LOSSES:
    raise ValueError(f'Unknown loss {name!r}; valid losses: {", ".join(sorted(_LOSSES))}.')
  return _LOSSES[name]
