"""DHN's loss (Zhu, Long, Wang & Cao, "Deep Hashing Network for Efficient Similarity
Retrieval", AAAI 2016): a pairwise cross-entropy on inner products of tanh codes and a smooth
pairwise quantization loss."""

import math

import jax
import jax.numpy as jnp

from dahjax.losses import pairs


def _log_cosh(x: jax.Array) -> jax.Array:
  """log cosh x = logaddexp(x, -x) - log 2, which does not overflow for large |x|."""
  return jnp.logaddexp(x, -x) - math.log(2.0)


def dhn_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  lam: float | None = None,
  scale: float = 1.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DHN's loss C = L + lam Q over the pairs i != j of the batch.

  The hash layer's outputs are squashed to codes z = tanh(u) (the paper's fch layer has a
  tanh activation; thulab/DeepHash, the authors' group's TensorFlow code, applies tanh to
  its AlexNet's fc8 too). Per pair, with theta_ij = scale <z_i, z_j>:
  L's term = log(1 + exp(theta_ij)) - s_ij theta_ij (the pairwise cross-entropy, the
  negative log of the logistic likelihood p(s_ij | h_i, h_j) = sigmoid(<h_i, h_j>)), and
  Q's term = sum_k [log cosh(|z_ik| - 1) + log cosh(|z_jk| - 1)] (the pairwise
  quantization loss: the negative log of a bimodal Laplacian prior on each code,
  || |z| - 1 ||_1, with |x| smoothed to log cosh x). Both are sums over the pairs in the
  paper; here both are means over the B (B - 1) ordered pairs, so that
  `likelihood` = mean_{i != j} L's term and
  `quantization` = lam mean_{i != j} Q's term = 2 lam mean_i sum_k log cosh(|z_ik| - 1).

  Defaults. scale = 1: the paper's likelihood is the standard sigmoid of the inner
  product (HashNet later added a bandwidth alpha); DeepHash-pytorch (DHN.py) uses 1/2, as
  DPSH, and thulab/DeepHash scales by alpha (0.5 in its loss, 10 with cosine-normalised
  codes in its example script). The default lam = 0.05 / k comes from DeepHash-pytorch:
  its alpha = 0.1 on the mean over the B x k bits, 0.1 mean_{i,k} log cosh(|u_ik| - 1),
  rewritten in this normalisation (2 lam k = 0.1).
  thulab/DeepHash's DHN instead weights the pairs like HashNet, uses a squared
  quantization (|z| - 1)^2 and ships lam = 0; DeepHash-pytorch feeds the raw outputs (no
  tanh) to both terms and scores the batch against a memory of all training outputs,
  which the paper does not use. This follows the paper.

  Args:
    outputs: model outputs with `hash` (raw u, before the tanh) [B, k].
    labels: 0/1 labels [B, C]; a pair that shares a label is similar.
    lam: weight lambda of the quantization loss Q; defaults to 0.05 / k.
    scale: factor of the inner product in the likelihood.

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'likelihood', 'quantization'}
    (scalars, `quantization` with its weight lam).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import dhn
    >>> outputs = {'hash': jnp.array([[1.0, -1.0], [0.5, -1.5], [0.5, -0.5]])}
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> loss, aux = dhn.dhn_loss(outputs=outputs, labels=labels, lam=0.1)
    >>> print(round(float(aux['likelihood']), 4), round(float(aux['quantization']), 4))
    0.8221 0.0317

  References:
    Zhu, Long, Wang & Cao, "Deep Hashing Network for Efficient Similarity Retrieval",
    AAAI 2016, Sec. "Deep Hashing Network" (the tanh hash layer fch, the pairwise
    cross-entropy loss, the bimodal Laplacian prior and its smooth log cosh surrogate).
  """
  u = outputs['hash'].astype(jnp.float32)
  z = jnp.tanh(u)
  lam = 0.05 / u.shape[-1] if lam is None else lam
  s = pairs.pairwise_similarity(labels)
  theta = scale * (z @ z.T)
  likelihood = pairs.off_diagonal_mean(jax.nn.softplus(theta) - s * theta)
  per_image = jnp.sum(_log_cosh(jnp.abs(z) - 1.0), axis=-1)
  quantization = 2.0 * lam * jnp.mean(per_image)
  return likelihood + quantization, {'likelihood': likelihood, 'quantization': quantization}
