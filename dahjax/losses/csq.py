"""CSQ's loss (Yuan, Wang, Zhang, Tay, Jie, Liu & Feng, "Central Similarity Quantization for
Efficient Image and Video Retrieval", CVPR 2020): every bit pulled towards its image's hash
centre by a binary cross-entropy, centres from a Hadamard matrix, and a quantization term."""

import jax
import jax.numpy as jnp
import numpy as np

# numpy seed of the random centres (when no Hadamard matrix fits) and of the bits that break
# ties in a multi-label image's centre: fixed, so that the centres depend on (k, C) alone.
CENTER_SEED = 0
# Random centres: this many Bernoulli draws of the whole set, the best separated one kept.
CENTER_DRAWS = 16
QUANTIZATIONS = ('square', 'log_cosh')


def _sylvester(n: int) -> np.ndarray:
  """The n x n Sylvester-Hadamard matrix (n a power of 2): H_2m = [[H_m, H_m], [H_m, -H_m]]."""
  h = np.ones((1, 1), np.int64)
  while h.shape[0] < n:
    h = np.block([[h, h], [h, -h]])
  return h


def _min_distance(centers: np.ndarray) -> int:
  """The smallest Hamming distance between two different rows of +-1 centres [C, k]."""
  c, k = centers.shape
  if c < 2:
    return k
  d = (k - centers @ centers.T) // 2
  return int(d[~np.eye(c, dtype=bool)].min())


def csq_centers(*, bits: int, num_classes: int) -> np.ndarray:
  """CSQ's hash centres: one +-1 code of `bits` bits per class (Algorithm 1).

  When k is a power of 2 and 2k >= C, the centres are the first C rows of [H_k; -H_k], H_k
  the k x k Hadamard matrix (Sylvester's construction, the one scipy.linalg.hadamard, which
  the authors' release and DeepHash-pytorch call, builds): any two centres are k/2 apart in
  Hamming distance, or k for a row and its negation. Otherwise every bit is drawn from a
  Bernoulli(1/2), as the paper says, with numpy's default_rng(CENTER_SEED), CENTER_SEED = 0:
  of CENTER_DRAWS = 16 draws of the whole set, the one whose two closest centres are farthest
  apart is kept (the authors' tutorial and DeepHash-pytorch also redraw until the closest
  pair is far enough; they draw exactly k/2 ones per centre, the paper Bernoulli bits).

  Args:
    bits: k, the code length.
    num_classes: C.

  Returns:
    float32 [C, k] of -1 and +1, the same for the same (k, C).

  Examples:
    >>> from dahjax.losses import csq
    >>> print(csq.csq_centers(bits=4, num_classes=6))
    [[ 1.  1.  1.  1.]
     [ 1. -1.  1. -1.]
     [ 1.  1. -1. -1.]
     [ 1. -1. -1.  1.]
     [-1. -1. -1. -1.]
     [-1.  1. -1.  1.]]

  References:
    Yuan et al., "Central Similarity Quantization for Efficient Image and Video
    Retrieval", CVPR 2020, Sec. 3.2 (Definition 1 and Algorithm 1).
  """
  if bits < 1 or num_classes < 1:
    raise ValueError(f'bits={bits}, num_classes={num_classes}: both must be at least 1.')
  if bits & (bits - 1) == 0 and 2 * bits >= num_classes:
    h = _sylvester(bits)
    return np.concatenate([h, -h])[:num_classes].astype(np.float32)
  rng = np.random.default_rng(CENTER_SEED)
  draws = np.where(rng.random((CENTER_DRAWS, num_classes, bits)) < 0.5, -1, 1)
  best = max(range(CENTER_DRAWS), key=lambda i: (_min_distance(draws[i]), -i))
  return draws[best].astype(np.float32)


def _tie_bits(bits: int) -> np.ndarray:
  """0/1 bits for a multi-label centre's undecided bits (its centres' votes cancel there)."""
  rng = np.random.default_rng(CENTER_SEED + 1)
  return (rng.random(bits) < 0.5).astype(np.float32)


def csq_targets(*, labels: jax.Array, centers: jax.Array) -> jax.Array:
  """Each image's hash centre as 0/1 bits: its class centre, or its labels' binarised centroid.

  A multi-label image's centre is the centroid of its labels' centres, binarised (Sec. 3.2):
  bit 1 where the centres' sum is positive, 0 where it is negative. Where they cancel (an
  even number of labels split evenly, or no label at all) the bit is a fixed random one
  (`_tie_bits`, numpy seed CENTER_SEED + 1), as the authors' release and DeepHash-pytorch
  fill such bits from one random vector drawn at the start.

  Args:
    labels: 0/1 labels [B, C].
    centers: +-1 centres [C, k] (`csq_centers`).

  Returns:
    float32 [B, k] of 0s and 1s.
  """
  votes = jnp.asarray(labels, jnp.float32) @ jnp.asarray(centers, jnp.float32)
  tie = jnp.asarray(_tie_bits(votes.shape[-1]))
  return jnp.where(votes > 0, 1.0, jnp.where(votes < 0, 0.0, tie))


def csq_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  lambda_q: float = 0.05,
  quantization: str = 'square',
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes CSQ's loss L = L_C + lambda_q L_Q on the tanh of the raw outputs.

  With h = tanh(u) (the hash layer's activation) and c_i the 0/1 centre of image i
  (`csq_targets`), the central similarity term is the binary cross-entropy of every bit
  (h + 1) / 2 against c_i, averaged over the B k bits; (tanh(u) + 1) / 2 = sigmoid(2 u), so it
  is computed as softplus(2 u) - 2 u c, which stays finite at any u (the release's BCELoss
  clamps the logarithms at -100 instead).

  The quantization term L_Q is the authors' release's mean (|h| - 1)^2, also
  DeepHash-pytorch's (`quantization='square'`). The paper's L_Q is a different function of
  |h| - 1 (issues 21-22 of the release ask why); `quantization='log_cosh'` gives
  mean log cosh(|h| - 1), the paper's form as we recall it (its text was not at hand here to
  check it, nor its equation numbers).

  lambda_q = 0.05 is the release's default (options.py) and the weight of its README's
  ResNet-50 commands, the paper's backbone for its image results; the README's AlexNet
  commands use 1e-3 (1e-4 at 64 bits on ImageNet) and DeepHash-pytorch 1e-4. The release also
  has a pairwise term, weighted 0 in every published command; the paper has none, nor this.

  Args:
    outputs: model outputs with `hash` (raw u) [B, k].
    labels: 0/1 labels [B, C] (one-hot or multi-hot).
    lambda_q: weight of the quantization term.
    quantization: 'square' (the release) or 'log_cosh' (the paper).

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'center', 'quantization'} (the two
    terms as they enter the sum, so they add up to the loss).

  Raises:
    ValueError: an unknown `quantization`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import csq
    >>> outputs = {'hash': jnp.array([[2.0, 1.0, 1.5, 0.5], [1.0, -2.0, 0.5, -1.0]])}
    >>> labels = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, aux = csq.csq_loss(outputs=outputs, labels=labels)
    >>> print(round(float(aux['center']), 4), round(float(aux['quantization']), 4))
    0.1365 0.0048

  References:
    Yuan, Wang, Zhang, Tay, Jie, Liu & Feng, "Central Similarity Quantization for Efficient
    Image and Video Retrieval", CVPR 2020, Sec. 3.2 (hash centres, Algorithm 1) and
    Sec. 3.3 (the central similarity and quantization losses).
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(
      f'quantization={quantization!r}: use one of {", ".join(QUANTIZATIONS)}.'
    )
  u = outputs['hash'].astype(jnp.float32)
  centers = csq_centers(bits=u.shape[-1], num_classes=labels.shape[-1])
  target = csq_targets(labels=labels, centers=centers)
  center = jnp.mean(jax.nn.softplus(2.0 * u) - 2.0 * u * target)
  gap = jnp.abs(jnp.tanh(u)) - 1.0
  per_bit = jnp.square(gap) if quantization == 'square' else jnp.log(jnp.cosh(gap))
  quant = lambda_q * jnp.mean(per_bit)
  return center + quant, {'center': center, 'quantization': quant}
