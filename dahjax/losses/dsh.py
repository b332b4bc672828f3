"""DSH's loss (Liu, Wang, Shan & Chen, "Deep Supervised Hashing for Fast Image Retrieval",
CVPR 2016): a contrastive loss on the real-valued outputs with a margin, and an L1 pull of
every output towards +-1."""

import jax
import jax.numpy as jnp

from dahjax.losses import pairs


def dsh_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  margin: float | None = None,
  alpha: float = 0.01,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DSH's loss over all pairs of the batch (eqs. 4-5).

  Per pair (eq. 4), with D = ||b_i - b_j||^2 on the raw outputs b (no activation):
  L_r = 1/2 s_ij D + 1/2 (1 - s_ij) max(m - D, 0) + alpha (|| |b_i| - 1 ||_1 + || |b_j| - 1 ||_1),
  where s_ij = 1 for a similar pair (the paper writes y = 0 for it). The authors'
  release (lhmRyan/deep-supervised-hashing-DSH, hashing_loss_layer.cpp) sums L_r over
  the pairs i < j of the batch and divides by N (N - 1); that is what its gradient
  minimises and what is computed here: half the mean of L_r over the pairs, so
  `pairs` = 1/2 mean_{i<j} [pair terms] and `reg` = alpha mean_i || |b_i| - 1 ||_1
  (each image is in N - 1 pairs). The paper's sum has no normaliser; the learning rate
  absorbs the difference.

  The margin defaults to m = 2k (Sec. 3.3 and the release's `bi_margin` 24 for k = 12)
  and alpha to 0.01 (Sec. 4.2, Table 1). Codes are sign(b) (eq. 3 at test time).

  Args:
    outputs: model outputs with `hash` (raw b) [B, k].
    labels: 0/1 labels [B, C]; a pair that shares a label is similar.
    margin: m; defaults to 2k.
    alpha: weight of the regulariser.

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'pairs', 'reg'} (scalars).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> outputs = {'hash': jnp.array([[1.0, -1.0], [0.5, -1.5], [0.5, -0.5]])}
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> loss, aux = losses.dsh_loss(outputs=outputs, labels=labels)
    >>> print(round(float(aux['pairs']), 4), round(float(aux['reg']), 4))
    0.5833 0.0067

  References:
    Liu, Wang, Shan & Chen, "Deep Supervised Hashing for Fast Image Retrieval",
    CVPR 2016, Sec. 3.1-3.3, eqs. 4-6.
  """
  b = outputs['hash'].astype(jnp.float32)
  m = 2.0 * b.shape[-1] if margin is None else margin
  s = pairs.pairwise_similarity(labels)
  d = pairs.squared_distances(b)
  per_pair = s * d + (1.0 - s) * jax.nn.relu(m - d)
  pair_term = 0.25 * pairs.off_diagonal_mean(per_pair)
  reg = alpha * jnp.mean(jnp.sum(jnp.abs(jnp.abs(b) - 1.0), axis=-1))
  return pair_term + reg, {'pairs': pair_term, 'reg': reg}
