"""Pairwise hashing losses of DAH and DPFAH as pure functions over all pairs of a batch.

Every loss is computed on B x B matrices over the ordered pairs i != j of the batch
(no Python loop over pairs), reads no configuration and is safe under `jax.jit` and
`jax.grad`. Under a data-parallel mesh the batch is one global array, so pairs that
span devices count like any other.

`get_loss(name)` returns a registered total loss: a function of keyword arguments
`outputs` (the model's output dict), `labels` (0/1 [B, C]) and the loss's own
hyper-parameters, returning `(loss, aux)` where `aux` holds each term for logging.
"""

from collections.abc import Callable
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import optax

from dahjax import registry
from dahjax.models import heads


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
  return (_map_row_blocks(block, jnp.concatenate([codes, sym], axis=1), codes),)


_pairwise_log_sum.defvjp(_pairwise_log_sum_fwd, _pairwise_log_sum_bwd)


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
  return jnp.where(similarity > 0, squared_distances(codes), log_term)


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
    terms['w1'] = off_diagonal_mean(
      dah_similarity_term(codes=codes, similarity=similarity, threshold=threshold)
    )
  if phi2:
    terms['w2'] = off_diagonal_mean(dah_balance_term(codes=codes))
  weights = {'w1': phi1, 'w2': phi2}
  w = sum((weights[k] * v for k, v in terms.items()), jnp.zeros((), jnp.float32))
  return (w, terms) if with_terms else w


def softmax_cross_entropy(*, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Computes the softmax cross-entropy, averaged over the batch.

  Multi-hot labels are spread evenly over their classes, so a row of labels is always a
  distribution.

  Args:
    logits: unnormalised class scores [B, C].
    labels: 0/1 labels [B, C] (one-hot or multi-hot).

  Returns:
    The scalar mean cross-entropy, float32.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> logits = jnp.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> print(round(float(losses.softmax_cross_entropy(logits=logits, labels=labels)), 4))
    0.3157

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.B (the classification loss).
  """
  labels = jnp.asarray(labels, jnp.float32)
  targets = labels / jnp.maximum(jnp.sum(labels, axis=-1, keepdims=True), 1.0)
  return jnp.mean(optax.softmax_cross_entropy(logits, targets))


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
    aux['ce'] = softmax_cross_entropy(
      logits=outputs['logits'].astype(jnp.float32), labels=labels
    )
  w, terms = dah_hash_loss(
    codes=outputs['hash'].astype(jnp.float32),
    similarity=pairwise_similarity(labels),
    threshold=threshold,
    phi1=phi1,
    phi2=phi2,
    with_terms=True,
  )
  return ce_weight * aux.get('ce', 0.0) + w, {**aux, **terms}


def dpfah_likelihood_loss(
  *, codes: jax.Array, similarity: jax.Array, alpha: float = 0.5
) -> jax.Array:
  """Computes DPFAH's pairwise negative log-likelihood L1 over the pairs i != j.

  L1 = mean_{i != j} [log(1 + exp(theta_ij)) - s_ij theta_ij], theta = alpha <c_i, c_j>,
  with log(1 + exp(.)) computed as a softplus, which neither overflows nor loses
  precision for large |theta|.

  The paper's eq. 12 writes theta = <u_i, u_j> with no scale; alpha = 1/2 follows
  DPSH (theta_ij = <u_i, u_j> / 2), whose loss eq. 12 is, and agrees with the 1/2
  factors of the paper's gradient, eq. 18. Where eq. 12 writes the raw outputs u, the
  codes here are the clipped f(u) of eq. 2. The paper sums over the pairs; the mean
  keeps the loss's scale independent of B.

  Args:
    codes: relaxed codes f(u) = clip(u, -1, 1), [B, l].
    similarity: 0/1 pair similarity [B, B].
    alpha: scale of the inner product (DPSH's 1/2).

  Returns:
    The scalar L1, dtype of `codes`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> from dahjax.models import heads
    >>> u = jnp.array([[1.2, 0.5], [0.9, 1.5], [-0.8, -0.3]])
    >>> similarity = losses.pairwise_similarity(jnp.array([[1, 0], [1, 0], [0, 1]]))
    >>> l1 = losses.dpfah_likelihood_loss(codes=heads.clip_codes(u), similarity=similarity)
    >>> print(round(float(l1), 4))
    0.4524

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, eqs. 10-12.

    Li, Wang & Kang, "Feature Learning based Deep Supervised Hashing with Pairwise
    Labels" (DPSH), IJCAI 2016.
  """
  theta = alpha * (codes @ codes.T)
  return off_diagonal_mean(jax.nn.softplus(theta) - similarity * theta)


def dpfah_quantization_loss(*, u: jax.Array, delta: float = 1.1) -> jax.Array:
  """Computes DPFAH's quantization loss L2 on the raw hash layer outputs u.

  L2 = mean_i sum_bits [ReLU(-delta - u) + ReLU(u - delta)]: zero while every
  |u| <= delta, it pushes the hash layer's outputs back inside the margin. The paper
  sums over the images; the mean keeps the loss's scale independent of B.

  Args:
    u: raw hash layer outputs [B, l].
    delta: the margin.

  Returns:
    The scalar L2, dtype of `u`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> u = jnp.array([[1.2, 0.5], [0.9, 1.5], [-0.8, -0.3]])
    >>> print(round(float(losses.dpfah_quantization_loss(u=u)), 4))
    0.1667

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, eq. 13.
  """
  margin = jax.nn.relu(-delta - u) + jax.nn.relu(u - delta)
  return jnp.mean(jnp.sum(margin, axis=-1))


def sigmoid_cross_entropy(*, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Computes DPFAH's classification loss L3: sigmoid cross-entropy over the classes.

  L3 = mean_i sum_c [sigmoid cross-entropy of o_ic against y_ic]: every class is its
  own binary decision, so multi-hot labels need no special case. The paper sums over
  the images; the mean keeps the loss's scale independent of B.

  Args:
    logits: classifier outputs o [B, C].
    labels: 0/1 labels [B, C] (one-hot or multi-hot).

  Returns:
    The scalar L3, dtype of `logits`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> logits = jnp.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> print(round(float(losses.sigmoid_cross_entropy(logits=logits, labels=labels)), 4))
    1.0889

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, eq. 14.
  """
  return jnp.mean(
    jnp.sum(
      optax.sigmoid_binary_cross_entropy(logits, jnp.asarray(labels, logits.dtype)), axis=-1
    )
  )


def dpfah_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  alpha: float = 0.5,
  delta: float = 1.1,
  eta: float = 10.0,
  zeta: float = 0.1,
  hash_weight: float | jax.Array = 1.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DPFAH's total loss L = L1 + eta L2 + zeta L3.

  With `hash_weight` w != 1 it is w (L1 + eta L2) + zeta L3: the train loop's warm-up
  of the hash terms (`config.loss.hash_warmup_steps`, not in the paper) lets the
  classification term train the backbone first. w = 1 is the paper's loss.

  L1 runs on the clipped codes f(u) = clip(u, -1, 1), L2 on the raw u. The defaults
  are the paper's delta = 1.1, eta = 10 and zeta = 0.1; alpha = 1/2 is DPSH's scale,
  which the paper leaves open (see `dpfah_likelihood_loss`). Each term is a mean over
  the batch (or the pairs) where the paper sums, so the loss's scale does not grow
  with B.

  Args:
    outputs: model outputs with `hash` (raw u) [B, l] and `logits` [B, C].
    labels: 0/1 labels [B, C] (one-hot or multi-hot).
    alpha: inner-product scale of L1.
    delta: margin of L2.
    eta: weight of L2.
    zeta: weight of L3.
    hash_weight: weight of L1 + eta L2 (a scalar, may be traced).

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'l1', 'l2', 'l3'} (scalars).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> outputs = {'hash': jnp.array([[1.2, 0.5], [0.9, 1.5], [-0.8, -0.3]]),
    ...            'logits': jnp.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]])}
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> loss, aux = losses.dpfah_loss(outputs=outputs, labels=labels)
    >>> print(round(float(loss), 4), sorted(aux))
    2.2279 ['l1', 'l2', 'l3']

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, eqs. 12-15; Tables 3-4 (eta, zeta).
  """
  u = outputs['hash'].astype(jnp.float32)
  l1 = dpfah_likelihood_loss(
    codes=heads.clip_codes(u), similarity=pairwise_similarity(labels), alpha=alpha
  )
  l2 = dpfah_quantization_loss(u=u, delta=delta)
  l3 = sigmoid_cross_entropy(logits=outputs['logits'].astype(jnp.float32), labels=labels)
  return hash_weight * (l1 + eta * l2) + zeta * l3, {'l1': l1, 'l2': l2, 'l3': l3}


_LOSSES: dict[str, Callable[..., tuple[jax.Array, dict[str, jax.Array]]]] = {
  'dah': dah_loss,
  'dpfah': dpfah_loss,
}


def get_loss(name: str) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
  """Returns the registered total loss `name`.

  Args:
    name: 'dah' (`dah_loss`) or 'dpfah' (`dpfah_loss`).

  Returns:
    The loss function: keyword arguments `outputs`, `labels` and its hyper-parameters,
    returning `(loss, aux)`.

  Raises:
    ValueError: an unknown name; the message lists the valid ones.

  Examples:
    >>> from dahjax import losses
    >>> print(losses.get_loss('dpfah').__name__)
    dpfah_loss
  """
  return registry.lookup(_LOSSES, name, 'loss', 'losses')


def loss_kwargs(name: str, loss_config: Any) -> dict[str, Any]:
  """The hyper-parameters of loss `name` from `loss_config` (a config's `loss`, which
  holds the settings of every loss: each loss takes those it names).

  Examples:
    >>> from dahjax import losses
    >>> sorted(losses.loss_kwargs('dpfah', {'alpha': 0.5, 'eta': 10.0, 'phi1': 1.0}))
    ['alpha', 'eta']
  """
  params = inspect.signature(get_loss(name)).parameters
  values = dict(loss_config)
  return {k: values[k] for k in params if k not in ('outputs', 'labels') and k in values}


def check_hash_warmup(name: str, warmup_steps: int) -> None:
  """Raises ValueError for a warm-up of the hash terms that loss `name` cannot take."""
  if warmup_steps < 0:
    raise ValueError(f'loss.hash_warmup_steps={warmup_steps}: use 0 (off) or more steps.')
  if warmup_steps and 'hash_weight' not in inspect.signature(get_loss(name)).parameters:
    takes = sorted(
      n for n, f in _LOSSES.items() if 'hash_weight' in inspect.signature(f).parameters
    )
    raise ValueError(
      f'loss.hash_warmup_steps={warmup_steps}: loss {name!r} has no weight to warm up; '
      f'the option is for {", ".join(takes)} (set it to 0).'
    )


def check_batch_size(batch_size: int) -> None:
  """Raises ValueError for a batch too small to hold a pair (every loss is pairwise)."""
  if batch_size < 2:
    raise ValueError(f'batch_size={batch_size}: pairwise losses need at least 2.')
