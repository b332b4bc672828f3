"""DBDH's loss (Zheng, Zhang & Lu, "Deep balanced discrete hashing for image retrieval",
Neurocomputing 2020): a pairwise likelihood and a balance term computed on the binary codes
themselves, trained through sign with the straight-through gradient."""

import jax
import jax.numpy as jnp

from dahjax.losses import greedyhash
from dahjax.losses import pairs


def dbdh_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  alpha: float = 0.1,
  p: int = 2,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DBDH's loss over all pairs i != j of the batch, on the codes b = sgn(u).

  DBDH keeps no continuous relaxation: the network's last layer outputs b = sgn(u) and the
  gradient reaches u by the straight-through estimator (as the paper's abstract states),
  here `greedyhash.greedy_sign` (sgn(0) = +1, dL/du = dL/db). On b the loss is
  pairs = mean_{i != j} [log(1 + e^Theta_ij) - s_ij Theta_ij], Theta_ij = 1/2 b_i^T b_j
  (DPSH's likelihood, computed as a softplus), plus the balance term
  balance = alpha mean_i |mean_r b_ir|^p, which is 0 when half of a code's bits are +1.

  The pairwise loss's exact form, Theta's 1/2, the balance term's form and the defaults
  alpha = 0.1, p = 2 (p = 1 its alternative) are DeepHash-pytorch's DBDH.py, the only
  implementation found (no authors' release); the paper's equations were not at hand to
  check them. DeepHash-pytorch departs from the paper's abstract in one way not followed
  here: it trains on the relaxed clip(u, -1, 1), not on sgn(u) with the straight-through
  gradient, the very relaxation the paper sets out to avoid. It also pairs the batch with a
  memory of every training image's outputs, its template for DPSH-like losses; nothing in the
  paper's abstract asks for one, so this loss pairs the images of the batch, without memory.
  Means over the pairs and the images keep the loss's scale independent of B.

  Args:
    outputs: model outputs with `hash` (raw u) [B, k].
    labels: 0/1 labels [B, C]; a pair that shares a label is similar.
    alpha: weight of the balance term.
    p: exponent of the balance term (2, or 1 for |mean|).

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'pairs', 'balance'} (the two terms as
    they enter the sum).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import dbdh
    >>> outputs = {'hash': jnp.array([[0.5, -1.0, 2.0], [0.3, -0.2, 0.1], [-1.0, 1.0, 0.4]])}
    >>> labels = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> loss, aux = dbdh.dbdh_loss(outputs=outputs, labels=labels)
    >>> print(round(float(aux['pairs']), 4), round(float(aux['balance']), 4))
    0.3832 0.0111

  References:
    Zheng, Zhang & Lu, "Deep balanced discrete hashing for image retrieval",
    Neurocomputing 403 (2020) 224-236: the straight-through code layer, the pairwise loss
    and the balance term (the method's section; its equations were not at hand here, the
    forms are DeepHash-pytorch's DBDH.py).

    Li, Wang & Kang, "Feature Learning based Deep Supervised Hashing with Pairwise
    Labels" (DPSH), IJCAI 2016 (the likelihood).
  """
  b = greedyhash.greedy_sign(outputs['hash'].astype(jnp.float32))
  s = pairs.pairwise_similarity(labels)
  theta = 0.5 * (b @ b.T)
  pair_term = pairs.off_diagonal_mean(jax.nn.softplus(theta) - s * theta)
  balance = alpha * jnp.mean(jnp.abs(jnp.mean(b, axis=-1)) ** p)
  return pair_term + balance, {'pairs': pair_term, 'balance': balance}
