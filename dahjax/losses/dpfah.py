"""DPFAH's losses (Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
retrieval", Scientific Reports 2022): the pairwise likelihood L1, the quantization margin
L2 and the total loss with the classification term L3."""

import jax
import jax.numpy as jnp

from dahjax.losses import classification
from dahjax.losses import pairs
from dahjax.models import heads


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
  return pairs.off_diagonal_mean(jax.nn.softplus(theta) - similarity * theta)


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


def dpfah_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  alpha: float = 0.5,
  delta: float = 1.1,
  eta: float = 10.0,
  zeta: float = 0.1,
  sign_pull: float = 0.0,
  hash_weight: float | jax.Array = 1.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DPFAH's total loss L = L1 + eta L2 + zeta L3.

  With `hash_weight` w != 1 it is w (L1 + eta L2) + zeta L3: the train loop's warm-up
  of the hash terms (`config.loss.hash_warmup_steps`, not in the paper) lets the
  classification term train the backbone first. w = 1 is the paper's loss.

  With `sign_pull` beta > 0 (not in the paper) the hash terms gain a pull of u towards
  its signs, L4 = mean over the batch and the bits of (u - sgn u)^2, DPSH's quantization
  term (in DeepHash-pytorch's mean form): L = w (L1 + eta L2 + beta L4) + zeta L3. L2 is
  zero inside its margin, so in DPFAH nothing moves |u| away from 0, where L1 = ln 2 has
  a saddle (its gradient is proportional to the codes); L4 pushes every bit outwards.

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
    sign_pull: weight beta of L4 (0: the paper's loss).
    hash_weight: weight of the hash terms L1 + eta L2 (+ beta L4) (a scalar, may be traced).

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'l1', 'l2', 'l3'} (scalars),
    and 'l4' where `sign_pull` > 0.

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

    Li, Wang & Kang, "Feature Learning based Deep Supervised Hashing with Pairwise
    Labels" (DPSH), IJCAI 2016, Sec. 3 (the quantization term of L4).
  """
  u = outputs['hash'].astype(jnp.float32)
  l1 = dpfah_likelihood_loss(
    codes=heads.clip_codes(u), similarity=pairs.pairwise_similarity(labels), alpha=alpha
  )
  l2 = dpfah_quantization_loss(u=u, delta=delta)
  l3 = classification.sigmoid_cross_entropy(
    logits=outputs['logits'].astype(jnp.float32), labels=labels
  )
  hash_terms = l1 + eta * l2
  aux = {'l1': l1, 'l2': l2, 'l3': l3}
  if sign_pull:
    aux['l4'] = jnp.mean(jnp.square(u - jax.lax.stop_gradient(pairs.sign(u))))
    hash_terms = hash_terms + sign_pull * aux['l4']
  return hash_weight * hash_terms + zeta * l3, aux
