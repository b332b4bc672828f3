"""LCDSH's loss (Zhu & Gao, "Locality-Constrained Deep Supervised Hashing for Image
Retrieval", IJCAI 2017): a pairwise likelihood on the real-valued outputs and a locality
constraint that keeps the pair probabilities of the outputs and of their binary codes close."""

import jax
import jax.numpy as jnp

from dahjax.losses import pairs


def lcdsh_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  lam: float = 3.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes LCDSH's loss L1 + lam L2 over the pairs i != j of the batch.

  LCDSH maximises the posterior of the pairwise labels given the codes, and adds a
  locality constraint instead of a quantization loss: the similarity of each pair
  computed from the real-valued outputs should stay that of their binary codes, so that
  quantizing does not change the distribution of the features. With the raw outputs u,
  b = sgn(u), Theta_ij = 1/2 u_i^T u_j, Phi_ij = 1/2 b_i^T b_j and s'_ij = 2 s_ij - 1 in
  {-1, +1}:
  L1 = mean_{i != j} log(1 + exp(-s'_ij Theta_ij))  (= softplus(Theta) - s Theta),
  L2 = mean_{i != j} (sigmoid(Theta_ij) - sigmoid(Phi_ij))^2.
  b has no gradient (sgn's is 0 almost everywhere), so L2 moves each pair's probability
  sigmoid(Theta_ij) towards that of the codes.

  Sources. These are the terms of DeepHash-pytorch's LCDSH.py, the only public code for
  the method (no release by the authors could be found); lam = 3 is its setting for
  CIFAR-10 and NUS-WIDE (its reported 0.798 and 0.833 mAP at 48 bits). It averages over
  all B^2 pairs, i = j included, and clamps Theta to [-50, 50]; here the mean is over the
  pairs i != j and softplus keeps L1 finite without the clamp.

  Args:
    outputs: model outputs with `hash` (raw u) [B, k].
    labels: 0/1 labels [B, C]; a pair that shares a label is similar.
    lam: weight of the locality constraint L2.

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'likelihood' (L1), 'locality'
    (lam L2)} (scalars).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import lcdsh
    >>> outputs = {'hash': jnp.array([[1.0, -1.0], [0.5, -1.5], [0.5, -0.5]])}
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> loss, aux = lcdsh.lcdsh_loss(outputs=outputs, labels=labels)
    >>> print(round(float(aux['likelihood']), 4), round(float(aux['locality']), 4))
    0.7538 0.0236

  References:
    Zhu & Gao, "Locality-Constrained Deep Supervised Hashing for Image Retrieval",
    IJCAI 2017, pp. 3567-3573 (the pairwise posterior and the locality constraint).
  """
  u = outputs['hash'].astype(jnp.float32)
  b = pairs.sign(jax.lax.stop_gradient(u))
  s = pairs.pairwise_similarity(labels)
  theta = 0.5 * (u @ u.T)
  phi = 0.5 * (b @ b.T)
  likelihood = pairs.off_diagonal_mean(jax.nn.softplus(theta) - s * theta)
  gap = jax.nn.sigmoid(theta) - jax.nn.sigmoid(phi)
  locality = lam * pairs.off_diagonal_mean(jnp.square(gap))
  return likelihood + locality, {'likelihood': likelihood, 'locality': locality}
