"""DAH's losses (Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE
Access 2020): the logarithmic pairwise term W1, the bit-balance term W2 and the total
loss with the classifier's cross-entropy."""

import jax
import jax.numpy as jnp

from dahjax.losses import classification
from dahjax.losses import pairs


@jax.custom_vjp
def _pairwise_log_sum(codes: jax.Array) -> jax.Array:
  """P[i, j] = sum_b log(1 - |x_ib - x_jb|), [B, B], for codes in (1/4, 3/4)."""
  return pairs.map_row_blocks(
    lambda r, x: jnp.sum(jnp.log1p(-jnp.abs(r[:, None, :] - x[None])), axis=-1),
    codes,
    codes,
  )


def _pairwise_log_sum_fwd(codes):
  return _pairwise_log_sum(codes), codes


def _pairwise_log_sum_bwd(codes, g):
  # dP_ij/dx_ib = -sign(d_ijb) / (1 - |d_ijb|) and dP_ij/dx_jb is its negative, so
  # dx_i = sum_j (g_ij + g_ji) * (-sign(d_ijb) / (1 - |d_ijb|)), computed per block of
  # rows i; autodiff would hold several [B, B, k] arrays (38 GB at B = 8192, k = 48).
  sym = g + g.T

  def block(rows, x):
    r, w = rows[:, : -x.shape[0]], rows[:, -x.shape[0] :]
    diff = r[:, None, :] - x[None]
    return jnp.sum(w[:, :, None] * (-jnp.sign(diff) / (1.0 - jnp.abs(diff))), axis=1)

  # Each block needs its rows of codes and of `sym`: carry them as one array.
  return (pairs.map_row_blocks(block, jnp.concatenate([codes, sym], axis=1), codes),)


_pairwise_log_sum.defvjp(_pairwise_log_sum_fwd, _pairwise_log_sum_bwd)


def dah_similarity_term(
  *, codes: jax.Array, similarity: jax.Array, threshold: float | None = None
) -> jax.Array:
  """Computes DAH's similarity term W1 for all pairs of codes.

  W1 = ||x_i - x_j||^2 for similar pairs (S = 1) and
  W1 = |t + sum_b log(1 - |x_ib - x_jb|)| for dissimilar pairs (S = 0), which is
  smallest when the pair's log term reaches the threshold t.

  Memory is O(B^2) plus bounded blocks: the log term and its gradient are computed over
  blocks of rows, never as a whole [B, B, k] array.

  Args:
    codes: shrink-sigmoid outputs in (1/4, 3/4), [B, k].
    similarity: 0/1 pair similarity [B, B].
    threshold: t; defaults to k / 4.8 as in the paper.

  Returns:
    [B, B] matrix of W1 values, dtype of `codes` (the diagonal is not masked here).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from dahjax import losses
    >>> codes = jnp.array([[0.3, 0.4], [0.4, 0.3], [0.7, 0.6]])
    >>> similarity = losses.pairwise_similarity(jnp.array([[1, 0], [1, 0], [0, 1]]))
    >>> w1 = losses.dah_similarity_term(codes=codes, similarity=similarity)
    >>> print(np.round(np.asarray(w1), 4))
    [[0.     0.02   0.3173]
     [0.02   0.     0.2967]
     [0.3173 0.2967 0.    ]]

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.B, eqs. 2-3.
  """
  k = codes.shape[-1]
  t = k / 4.8 if threshold is None else threshold
  # |d| < 1/2 since codes lie in (1/4, 3/4), so log(1 - |d|) stays finite.
  log_term = jnp.abs(t + _pairwise_log_sum(codes))
  return jnp.where(similarity > 0, pairs.squared_distances(codes), log_term)


def dah_balance_term(*, codes: jax.Array) -> jax.Array:
  """Computes DAH's bit-balance term W2 for all pairs of codes.

  W2 = (sum_b (x_ib - 1/2) + sum_b (x_jb - 1/2))^2, the square of the pair's summed
  deviations from 1/2; it keeps the hash layer's outputs centred on 1/2, so that each
  bit is 1 about as often as 0.

  Args:
    codes: shrink-sigmoid outputs in (1/4, 3/4), [B, k].

  Returns:
    [B, B] matrix of W2 values, dtype of `codes` (the diagonal is not masked here).

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from dahjax import losses
    >>> codes = jnp.array([[0.3, 0.4], [0.4, 0.3], [0.7, 0.6]])
    >>> print(np.round(np.asarray(losses.dah_balance_term(codes=codes)), 4))
    [[0.36 0.36 0.  ]
     [0.36 0.36 0.  ]
     [0.   0.   0.36]]

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.B, eq. 4.
  """
  centred = jnp.sum(codes - 0.5, axis=-1)
  return jnp.square(centred[:, None] + centred[None, :])


def dah_hash_loss(
  *,
  codes: jax.Array,
  similarity: jax.Array,
  threshold: float | None = None,
  phi1: float = 1.0,
  phi2: float = 1.0,
  with_terms: bool = False,
):
  """Computes DAH's hash loss W: the mean over pairs i != j of phi1 W1 + phi2 W2.

  The paper's normaliser 1 / A(2n, 2) is 1 / (B (B - 1)) for a batch of B = 2n. A term
  whose weight is 0 is not computed.

  Args:
    codes: shrink-sigmoid outputs in (1/4, 3/4), [B, k].
    similarity: 0/1 pair similarity [B, B].
    threshold: t of W1; defaults to k / 4.8.
    phi1: weight of the similarity term W1.
    phi2: weight of the bit-balance term W2.
    with_terms: also return the mean of each computed term, {'w1', 'w2'}.

  Returns:
    The scalar W (float32), or `(W, terms)` with `with_terms`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> codes = jnp.array([[0.3, 0.4], [0.4, 0.3], [0.7, 0.6]])
    >>> similarity = losses.pairwise_similarity(jnp.array([[1, 0], [1, 0], [0, 1]]))
    >>> w, terms = losses.dah_hash_loss(codes=codes, similarity=similarity,
    ...                                 with_terms=True)
    >>> print(round(float(w), 4), round(float(terms['w1']), 4), round(float(terms['w2']), 4))
    0.3313 0.2113 0.12

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.C, eq. 6.
  """
  terms = {}
  if phi1:
    terms['w1'] = pairs.off_diagonal_mean(
      dah_similarity_term(codes=codes, similarity=similarity, threshold=threshold)
    )
  if phi2:
    terms['w2'] = pairs.off_diagonal_mean(dah_balance_term(codes=codes))
  weights = {'w1': phi1, 'w2': phi2}
  w = sum((weights[k] * v for k, v in terms.items()), jnp.zeros((), jnp.float32))
  return (w, terms) if with_terms else w


def dah_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  threshold: float | None = None,
  phi1: float = 1.0,
  phi2: float = 1.0,
  ce_weight: float = 1.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DAH's total loss: softmax cross-entropy + phi1 W1 + phi2 W2.

  The paper trains the classifier with a softmax cross-entropy and the hash layer with
  W (eq. 6) but does not say how the two are combined; they are added with weight 1
  each (`ce_weight`). A term whose weight is 0 is neither computed nor logged, so the
  terms can be studied one at a time (W1 assumes codes in (1/4, 3/4); an unconstrained
  layer trained on cross-entropy alone would make it undefined).

  Args:
    outputs: model outputs with `hash` [B, k] in (1/4, 3/4) and `logits` [B, C].
    labels: 0/1 labels [B, C].
    threshold: t of W1; defaults to k / 4.8.
    phi1: weight of W1.
    phi2: weight of W2.
    ce_weight: weight of the cross-entropy term.

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'ce', 'w1', 'w2'} (scalars),
    less the terms of weight 0.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> outputs = {'hash': jnp.array([[0.3, 0.4], [0.4, 0.3], [0.7, 0.6]]),
    ...            'logits': jnp.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]])}
    >>> loss, aux = losses.dah_loss(outputs=outputs, labels=jnp.array([[1, 0], [1, 0], [0, 1]]))
    >>> print(round(float(loss), 4), sorted(aux))
    0.647 ['ce', 'w1', 'w2']

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.B-C, eqs. 2-4 and 6.
  """
  aux = {}
  if ce_weight:
    aux['ce'] = classification.softmax_cross_entropy(
      logits=outputs['logits'].astype(jnp.float32), labels=labels
    )
  w, terms = dah_hash_loss(
    codes=outputs['hash'].astype(jnp.float32),
    similarity=pairs.pairwise_similarity(labels),
    threshold=threshold,
    phi1=phi1,
    phi2=phi2,
    with_terms=True,
  )
  return ce_weight * aux.get('ce', 0.0) + w, {**aux, **terms}
