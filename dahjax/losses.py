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


def dah_similarity_term(*, codes: jax.Array, similarity: jax.Array,
                        threshold: float | None = None) -> jax.Array:
  """DAH's W1 (eqs. 2-3) for all pairs, as a [B, B] matrix.

  W1 = ||x_i - x_j||^2 for similar pairs (S = 1) and
  W1 = |t + sum_b log(1 - |x_ib - x_jb|)| for dissimilar pairs (S = 0).

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
  diff = codes[:, None, :] - codes[None, :, :]
  squared = jnp.sum(jnp.square(diff), axis=-1)
  # |d| < 1/2 since codes lie in (1/4, 3/4), so log(1 - |d|) stays finite.
  log_term = jnp.abs(t + jnp.sum(jnp.log1p(-jnp.abs(diff)), axis=-1))
  return jnp.where(similarity > 0, squared, log_term)


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

  Args:
    outputs: model outputs with `hash` [B, k] in (1/4, 3/4) and `logits` [B, C].
    labels: 0/1 labels [B, C].
    threshold: t of W1; defaults to k / 4.8.
    phi1: weight of W1.
    phi2: weight of W2.
    ce_weight: weight of the cross-entropy term.

  Returns:
    `(loss, aux)` with `aux` = {'ce', 'w1', 'w2'}.
  """
  codes = outputs['hash'].astype(jnp.float32)
  similarity = pairwise_similarity(labels)
  w1 = off_diagonal_mean(dah_similarity_term(codes=codes, similarity=similarity,
                                             threshold=threshold))
  w2 = off_diagonal_mean(dah_balance_term(codes=codes))
  ce = softmax_cross_entropy(logits=outputs['logits'].astype(jnp.float32),
                             labels=labels)
  loss = ce_weight * ce + phi1 * w1 + phi2 * w2
  return loss, {'ce': ce, 'w1': w1, 'w2': w2}


_LOSSES: dict[str, Callable[..., tuple[jax.Array, dict[str, jax.Array]]]] = {
    'dah': dah_loss,
}


def get_loss(name: str) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
  """Returns the registered total loss `name`; raises listing the valid names."""
  if name not in _LOSSES:
    raise ValueError(f'Unknown loss {name!r}; valid losses: {", ".join(sorted(_LOSSES))}.')
  return _LOSSES[name]
