"""Pair helpers shared by the hashing losses: similarity, means over pairs, distances.

Every loss works on B x B matrices over the pairs of one global batch, or B x N ones
against a memory of all N training images (no Python loop over pairs); these are the
pieces they share.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


def pairwise_similarity(
  labels_a: jax.Array, labels_b: jax.Array | None = None
) -> jax.Array:
  """Computes the pair similarity S: 1 where two label vectors share a label, else 0.

  S[i, j] = 1 when y_i . y_j > 0. For single-label data this is "same class", as both
  papers define it. Neither paper says how multi-label pairs (NUS-WIDE) are compared;
  a pair that shares at least one label counts as similar, the usual convention.

  Args:
    labels_a: 0/1 (one-hot or multi-hot) labels [N, C].
    labels_b: 0/1 labels [M, C]; defaults to `labels_a`.

  Returns:
    float32 [N, M] matrix of 0s and 1s.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> labels = jnp.array([[1, 0], [1, 1], [0, 1]])
    >>> print(losses.pairwise_similarity(labels))
    [[1. 1. 0.]
     [1. 1. 1.]
     [0. 1. 1.]]

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, eq. 3.

    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, eq. 1.
  """
  labels_b = labels_a if labels_b is None else labels_b
  overlap = jnp.asarray(labels_a, jnp.float32) @ jnp.asarray(labels_b, jnp.float32).T
  return (overlap > 0).astype(jnp.float32)


def off_diagonal_mean(matrix: jax.Array) -> jax.Array:
  """Computes the mean of a square matrix over its off-diagonal entries (pairs i != j).

  Args:
    matrix: pairwise values [B, B], B >= 2.

  Returns:
    A scalar of `matrix`'s dtype: the sum over i != j divided by B (B - 1).

  Raises:
    ValueError: B < 2, so that there is no pair.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> print(losses.off_diagonal_mean(jnp.array([[9.0, 1.0], [3.0, 9.0]])))
    2.0
  """
  n = matrix.shape[0]
  check_batch_size(n)
  mask = 1.0 - jnp.eye(n, dtype=matrix.dtype)
  return jnp.sum(matrix * mask) / (n * (n - 1))


# Pairwise [rows, B, k] blocks hold at most this many elements (64 MB in float32).
BLOCK_ELEMENTS = 1 << 24


def map_row_blocks(fn, rows: jax.Array, *args) -> jax.Array:
  """fn(row_block, *args) over blocks of `rows`, concatenated: bounded memory at any B."""
  n, k = rows.shape
  block = max(1, min(n, BLOCK_ELEMENTS // max(1, n * k)))
  if block == n:
    return fn(rows, *args)
  blocks = -(-n // block)
  padded = jnp.pad(rows, ((0, blocks * block - n), (0, 0)))
  out = jax.lax.map(lambda r: fn(r, *args), padded.reshape(blocks, block, k))
  return out.reshape(blocks * block, *out.shape[2:])[:n]


def squared_distances(codes: jax.Array) -> jax.Array:
  """Computes the squared Euclidean distances ||x_i - x_j||^2 of all pairs of codes.

  The distances come from inner products, so no [B, B, k] array is formed; tiny
  negative values from rounding are clipped to 0.

  Args:
    codes: continuous codes [B, k].

  Returns:
    [B, B] matrix of squared distances, dtype of `codes`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from dahjax import losses
    >>> codes = jnp.array([[0.3, 0.4], [0.4, 0.3], [0.7, 0.6]])
    >>> print(np.round(np.asarray(losses.squared_distances(codes)), 4))
    [[0.   0.02 0.2 ]
     [0.02 0.   0.18]
     [0.2  0.18 0.  ]]
  """
  sq = jnp.sum(jnp.square(codes), axis=-1)
  return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (codes @ codes.T), 0.0)


def check_batch_size(batch_size: int) -> None:
  """Raises ValueError for a batch too small to hold a pair (every loss is pairwise)."""
  if batch_size < 2:
    raise ValueError(f'batch_size={batch_size}: pairwise losses need at least 2.')


def sign(x: jax.Array) -> jax.Array:
  """sgn with sgn(0) = +1, so that every bit is -1 or +1 (bit 1 where >= 0, as the codes)."""
  return jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype)


def balanced_pair_means(
  per_pair: jax.Array, similarity: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Computes the means of a pairwise term over the similar and the dissimilar pairs.

  Over the pairs i != j; a kind of pair the batch lacks has mean 0. Weighting the two
  kinds equally is HashNet's weighted maximum likelihood for imbalanced data (w_ij =
  |S| / |S_1| or |S| / |S_0|, divided by |S|).

  Args:
    per_pair: pairwise values [B, B].
    similarity: 0/1 pair similarity [B, B].

  Returns:
    (mean over the similar pairs, mean over the dissimilar pairs), scalars.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> values = jnp.array([[9.0, 1.0, 2.0], [3.0, 9.0, 4.0], [6.0, 8.0, 9.0]])
    >>> similarity = losses.pairwise_similarity(jnp.array([[1, 0], [1, 0], [0, 1]]))
    >>> print([float(m) for m in losses.balanced_pair_means(values, similarity)])
    [2.0, 5.0]
  """
  n = per_pair.shape[0]
  check_batch_size(n)
  off_diagonal = 1.0 - jnp.eye(n, dtype=per_pair.dtype)
  similar = similarity.astype(per_pair.dtype) * off_diagonal
  dissimilar = off_diagonal - similar

  def mean(mask):
    return jnp.sum(per_pair * mask) / jnp.maximum(jnp.sum(mask), 1.0)

  return mean(similar), mean(dissimilar)


class MemoryPairs(NamedTuple):
  """A batch written into a memory of all N training images, and its pairs with them."""

  const_u: jax.Array  # The batch's outputs u, without gradient [B, k].
  memory_u: jax.Array  # The memory of outputs U, the batch's rows replaced [N, k].
  memory_y: jax.Array  # The memory of labels Y, the batch's rows replaced [N, C].
  theta: jax.Array  # u_i . U_j / 2 [B, N]; the gradient flows through u_i only.
  similarity: jax.Array  # s_ij of the batch's images with all N [B, N].


def against_memory(
  u: jax.Array, labels: jax.Array, memory: dict[str, jax.Array], indices: jax.Array
) -> MemoryPairs:
  """Writes a batch into a memory of outputs 'U' and labels 'Y' and pairs it with all N.

  The losses that keep such a memory (DPSH, DSDH, DFH) pair each batch image i with
  every training image j, the batch's own included, through theta_ij = u_i . u_j / 2
  with u_j read from the memory, where the batch's rows are its current outputs
  (without gradient: only u_i of the batch carries one).

  Args:
    u: the batch's outputs [B, k], float32.
    labels: the batch's 0/1 labels [B, C], float32.
    memory: {'U' [N, k], 'Y' [N, C], ...}.
    indices: int32 [B], each batch image's row in the memory.

  Returns:
    `MemoryPairs`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> memory = {'U': jnp.zeros((3, 2)), 'Y': jnp.zeros((3, 2))}
    >>> p = losses.pairs.against_memory(jnp.array([[1.0, -1.0]]), jnp.array([[1.0, 0.0]]),
    ...                                 memory, jnp.array([2]))
    >>> print(p.memory_u[2], p.theta, p.similarity)
    [ 1. -1.] [[0. 0. 1.]] [[0. 0. 1.]]
  """
  const_u = jax.lax.stop_gradient(u)
  memory_u = memory['U'].at[indices].set(const_u)
  memory_y = memory['Y'].at[indices].set(labels)
  return MemoryPairs(
    const_u=const_u,
    memory_u=memory_u,
    memory_y=memory_y,
    theta=0.5 * (u @ memory_u.T),
    similarity=pairwise_similarity(labels, memory_y),
  )
