"""IDHN's loss (Zhang, Zou, Lin, Chen & Wang, "Improved Deep Hashing with Soft Pairwise
Similarity for Multi-label Image Retrieval", IEEE TMM 2019): a soft similarity from the
labels' cosine, a cross-entropy on hard pairs, a squared error on soft ones, a quantization
term."""

import jax
import jax.numpy as jnp

from dahjax.losses import pairs

# A pair is "hard" (fully similar or fully dissimilar) when its soft similarity lies outside
# [HARD_LOW, HARD_HIGH], the thresholds of the authors' release and of DeepHash-pytorch.
HARD_LOW = 0.01
HARD_HIGH = 0.99


def soft_similarity(labels: jax.Array) -> jax.Array:
  """IDHN's soft similarity: the cosine s_ij = y_i . y_j / (||y_i|| ||y_j||) of label vectors.

  s_ij is 1 for images with the same labels, 0 for images sharing none, and in between for
  a partial overlap. An image without any label is dissimilar (0) to every image (the
  release divides by zero there; DeepHash-pytorch adds 1e-5 to the norms).

  Args:
    labels: 0/1 labels [B, C].

  Returns:
    float32 [B, B] in [0, 1].

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from dahjax.losses import idhn
    >>> labels = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    >>> print(np.round(np.asarray(idhn.soft_similarity(labels)), 4))
    [[1.     0.7071 0.    ]
     [0.7071 1.     0.    ]
     [0.     0.     1.    ]]
  """
  y = jnp.asarray(labels, jnp.float32)
  norm = jnp.sqrt(jnp.sum(y * y, axis=-1))
  return (y @ y.T) / jnp.maximum(norm[:, None] * norm[None, :], 1e-12)


def idhn_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  beta: float = 5.0,
  gamma: float = 0.1,
  alpha: float = 0.1,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes IDHN's loss over all pairs i != j of the batch.

  The codes are h = u / (1 + |u|) (softsign, the release's activation on the hash layer),
  k bits, and s the soft similarity (`soft_similarity`). A pair is hard when s < 0.01 or
  s > 0.99, soft otherwise. Per pair, with ip = h_i^T h_j:
    hard: log(1 + e^Theta) - s Theta, Theta = beta ip / k (a cross-entropy on a scaled inner
      product, computed as a softplus);
    soft: gamma k ((ip + k) / (2 k) - s)^2 (a squared error between s and the codes'
      similarity (ip + k) / (2 k), which is 1 - d_H / k for binary codes);
  pairs = the mean of these over i != j, and
  quantization = alpha mean over the B k bits of | |h| - 1 |.

  Every form and default here is the authors' release's (pectinid16/IDHN, train.py:
  softsign, beta = 5 "to limit the range", gamma = 0.1, alpha = 0.1, the thresholds, the
  factor k of the squared error). It averages over all B x B pairs including i = j; here the
  pairs are i != j, as for every loss of this repository. DeepHash-pytorch's IDHN.py differs:
  Theta = 0.5 ip whatever k, a squared error (Theta + k - 2 k s)^2 on that Theta, lambda = 0.1
  for the quantization, and the batch paired with a memory of every training image's codes
  (its template for DPSH-like losses); the paper and the release pair the images of a batch,
  as here.

  Args:
    outputs: model outputs with `hash` (raw u) [B, k].
    labels: 0/1 labels [B, C] (one-hot or multi-hot).
    beta: scale of the inner product in the cross-entropy (Theta in [-beta, beta]).
    gamma: weight of the soft pairs' squared error.
    alpha: weight of the quantization term.

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'pairs', 'quantization'} (the two
    terms as they enter the sum).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import idhn
    >>> outputs = {'hash': jnp.array([[2.0, -1.0, 3.0], [1.0, -2.0, 0.5], [-1.0, 1.5, -2.0]])}
    >>> labels = jnp.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    >>> loss, aux = idhn.idhn_loss(outputs=outputs, labels=labels)
    >>> print(round(float(aux['pairs']), 4), round(float(aux['quantization']), 4))
    0.086 0.0424

  References:
    Zhang, Zou, Lin, Chen & Wang, "Improved Deep Hashing with Soft Pairwise Similarity for
    Multi-label Image Retrieval", IEEE Transactions on Multimedia 2019 (arXiv:1803.02987),
    Sec. III (the soft similarity, the hard and soft pair losses, the quantization term).
  """
  u = outputs['hash'].astype(jnp.float32)
  k = u.shape[-1]
  h = u / (1.0 + jnp.abs(u))
  s = soft_similarity(labels)
  hard = (s < HARD_LOW) | (s > HARD_HIGH)
  ip = h @ h.T
  theta = beta * ip / k
  cross_entropy = jax.nn.softplus(theta) - s * theta
  squared = gamma * k * jnp.square((ip + k) / (2.0 * k) - s)
  pair_term = pairs.off_diagonal_mean(jnp.where(hard, cross_entropy, squared))
  quant = alpha * jnp.mean(jnp.abs(jnp.abs(h) - 1.0))
  return pair_term + quant, {'pairs': pair_term, 'quantization': quant}
