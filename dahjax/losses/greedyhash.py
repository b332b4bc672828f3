"""GreedyHash's loss (Su, Zhang, Han & Tian, "Greedy Hash: Towards Fast Optimization for
Accurate Hash Coding in CNN", NeurIPS 2018): a classifier on the sign codes, trained through
sign with the straight-through gradient, and a cubic penalty pulling the outputs to +-1."""

import jax
import jax.numpy as jnp

from dahjax.losses import classification
from dahjax.models.heads import greedy_sign

__all__ = ['greedy_sign', 'greedyhash_loss']


def greedyhash_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  alpha: float = 0.1,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes GreedyHash's supervised loss: CE(softmax(W^T b), y) + alpha mean | |u| - 1 |^3.

  The classifier reads the codes. In the paper and the authors' release (ssppp/GreedyHash,
  cifar1.py) the logits are a bias-free linear layer on b = sgn(u), trained through sgn by
  the straight-through gradient. This loss sees only the model's outputs, so the MODEL must
  compute `logits` from `greedy_sign(outputs['hash'])`, for example
  `nn.Dense(num_classes, use_bias=False)(greedy_sign(u))`; the loss does not check it. With
  logits from the backbone's features instead (beside the hash layer), it is not GreedyHash.

  The penalty is the release's mean over the B k bits of | |u| - 1 |^3 = |u - sgn(u)|^3
  (p = 3, the paper's ||H - sgn(H)||_p^p, Sec. 3), on the raw outputs u. alpha = 0.1 is the
  release's for CIFAR-10 (cifar1.py, cifar2.py) and DeepHash-pytorch's default; both use
  alpha = 1 for ImageNet (imagenet.py).

  The classification term is the softmax cross-entropy; a multi-hot row is spread evenly
  over its classes (`classification.softmax_cross_entropy`). The paper and the release are
  single-label (DeepHash-pytorch takes the first label of a multi-hot row).

  Args:
    outputs: model outputs with `hash` (raw u) [B, k] and `logits` [B, C], the latter
      computed from greedy_sign(u) by a linear layer.
    labels: 0/1 labels [B, C] (one-hot or multi-hot).
    alpha: weight of the penalty.

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'classification', 'penalty'} (the
    two terms as they enter the sum).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import greedyhash
    >>> u = jnp.array([[1.5, -0.5], [0.3, 1.0]])
    >>> w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> outputs = {'hash': u, 'logits': greedyhash.greedy_sign(u) @ w}
    >>> labels = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, aux = greedyhash.greedyhash_loss(outputs=outputs, labels=labels)
    >>> print(round(float(aux['classification']), 4), round(float(aux['penalty']), 4))
    0.3556 0.0148

  References:
    Su, Zhang, Han & Tian, "Greedy Hash: Towards Fast Optimization for Accurate Hash Coding
    in CNN", NeurIPS 2018, Sec. 3 (the hash coding layer and its penalty; the supervised
    loss).
  """
  u = outputs['hash'].astype(jnp.float32)
  ce = classification.softmax_cross_entropy(
    logits=outputs['logits'].astype(jnp.float32), labels=labels
  )
  penalty = alpha * jnp.mean(jnp.abs(jnp.abs(u) - 1.0) ** 3)
  return ce + penalty, {'classification': ce, 'penalty': penalty}
