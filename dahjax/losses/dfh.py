"""DFH's loss (Li, Pei, Zha & van Gemert, "Push for Quantization: Deep Fisher Hashing",
BMVC 2019): a pairwise likelihood with a margin against a memory of the whole training set,
and a pull towards binary codes drawn to binary class centres that are pushed apart."""

import jax
import jax.numpy as jnp

from dahjax.losses import pairs

# The centre update takes signs of sums: full float32 products, not the faster
# reduced-precision ones an accelerator may use by default.
_HIGHEST = jax.lax.Precision.HIGHEST


def _label_weights(labels: jax.Array) -> jax.Array:
  """Each multi-hot row divided by its number of labels, so C y is the mean of its centres."""
  return labels / jnp.maximum(jnp.sum(labels, axis=-1, keepdims=True), 1.0)


def dfh_init_memory(*, num_train: int, bits: int, num_classes: int) -> dict[str, jax.Array]:
  """DFH's initial state: every array zero.

  Zero centres mean "none yet": the first batch's codes are sgn(u_i) and the first centre
  update sets every centre to +-1 (as the authors' release starts from zero centres).

  Args:
    num_train: N, the training images.
    bits: k.
    num_classes: K.

  Returns:
    {'U': [N, k] outputs, 'Y': [N, K] labels, 'C': [k, K] class centres (column c_k)},
    all float32 zeros.

  Examples:
    >>> from dahjax.losses import dfh
    >>> memory = dfh.dfh_init_memory(num_train=5, bits=4, num_classes=3)
    >>> print({name: a.shape for name, a in sorted(memory.items())})
    {'C': (4, 3), 'U': (5, 4), 'Y': (5, 3)}
  """
  zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
  return {
    'U': zeros(num_train, bits),
    'Y': zeros(num_train, num_classes),
    'C': zeros(bits, num_classes),
  }


def dfh_center_update(
  *, centers: jax.Array, codes: jax.Array, labels: jax.Array, nu: float = 1.0
) -> jax.Array:
  """DFH's discrete update of the binary class centres from a batch's codes.

  It minimises ||B - C Y||_F^2 + nu sum_{k != l} c_k^T c_l over C in {-1, +1}^{k x K} (B the
  batch's codes [k, n], Y its weighted labels [K, n]): codes close to the centres of their
  classes, centres pushed apart. One sweep of discrete cyclic coordinate descent over the
  classes, one centre at a time with the others fixed:
  c_k = sgn(q_k - sum_{l != k} c_l (y_l . y_k) - nu sum_{l != k} c_l), q_k = B y_k^T, where
  y_l is class l's row of Y over the batch (the authors' release, center.py's
  `Discretecenter`). sgn(0) = +1.

  Args:
    centers: the current centres C [k, K] (column c_k; zeros at the start).
    codes: the batch's binary codes B as rows [n, k].
    labels: the batch's label weights as rows [n, K] (multi-hot rows divided by their sum).
    nu: weight of the inter-class term.

  Returns:
    The new centres [k, K], +-1.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import dfh
    >>> codes = jnp.array([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    >>> labels = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(dfh.dfh_center_update(centers=jnp.zeros((2, 2)), codes=codes, labels=labels))
    [[ 1. -1.]
     [ 1.  1.]]
  """
  codes = jnp.asarray(codes, jnp.float32)
  labels = jnp.asarray(labels, jnp.float32)
  q = jnp.matmul(codes.T, labels, precision=_HIGHEST)
  gram = jnp.matmul(labels.T, labels, precision=_HIGHEST)

  def center(k, c):
    c_k = c[:, k]
    shared = jnp.matmul(c, gram[:, k], precision=_HIGHEST) - c_k * gram[k, k]
    others = jnp.sum(c, axis=-1) - c_k
    return c.at[:, k].set(pairs.sign(q[:, k] - shared - nu * others))

  return jax.lax.fori_loop(0, labels.shape[-1], center, jnp.asarray(centers, jnp.float32))


def dfh_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  memory: dict[str, jax.Array],
  indices: jax.Array,
  margin: float = 3.0,
  mu: float = 1.0,
  nu: float = 1.0,
  eta: float = 0.5,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DFH's loss for a batch against the memory of all N training images.

  Pairs. With Theta_ij = 1/2 u_i^T u_j on the raw outputs u, DFH puts a margin m on the
  pairwise likelihood: p(s_ij = 1) = sigmoid(Theta_ij - m) and p(s_ij = 0) =
  1 - sigmoid(Theta_ij + m), so a similar pair is pushed to Theta > m and a dissimilar one
  to Theta < -m. Its negative log, over the batch i against every image j of the memory U
  (a constant; the batch's rows are first overwritten with its current outputs, as the
  authors' release and DeepHash-pytorch do):
  pairs = mean_{i, j} [s_ij softplus(m - Theta_ij) + (1 - s_ij) softplus(m + Theta_ij)].
  softplus replaces the two releases' clamp of Theta to [-100, 50].

  Fisher. Binary class centres C = [c_1 .. c_K] in {-1, +1}^{k x K} carry the
  within-class / between-class criterion: a code is drawn to the centres of its classes,
  the centres are pushed apart. Each step, the batch's codes are
  b_i = sgn(u_i + mu C y_i) (y_i divided by its number of labels), the closed-form minimiser
  of ||b_i - u_i||^2 + mu ||b_i - C y_i||^2; the centres are then updated from those codes
  by `dfh_center_update`; and the network is pulled to the codes by
  quantization = eta mean_{i, r} (b_ir - u_ir)^2.
  loss = pairs + quantization; the codes, like the memory, are constants.

  The order (codes from the old centres, then the centre update, then the loss on those
  codes) and the means are the authors' release's (Main.py, models/DFH_loss.py), which
  points to DeepHash-pytorch's DFH.py as its re-implementation. Where they differ:
  the release updates the centres discretely (center.py's `Discretecenter`, used here);
  DeepHash-pytorch relaxes them to V and takes 200 gradient steps on
  mean((V Y - B)^2) + nu mean((V^T V - k (2I - 11^T))^2) + nta mean((V - sgn V)^2)
  (nta = 1), C = sgn V.
  The release divides multi-hot labels by their count (used here); DeepHash-pytorch does not.
  Defaults: mu = 1, nu = 1 (`vul`) and eta = 0.5 are the release's (DeepHash-pytorch:
  mu = 0.1, vul = 1, eta = 0.5); the margin m = 3 is DeepHash-pytorch's, as the release sets
  margin = 0 and runs the likelihood without it (its margin form commented out).

  Args:
    outputs: model outputs with `hash` (raw u) [B, k].
    labels: 0/1 labels [B, K]; a pair that shares a label is similar.
    memory: {'U' [N, k], 'Y' [N, K], 'C' [k, K]} (`dfh_init_memory`).
    indices: int32 [B], each batch image's row 0..N-1 in the memory.
    margin: m, on Theta for both similar and dissimilar pairs.
    mu: weight of the class centres in the codes b_i.
    nu: weight of the centres' inter-class term.
    eta: weight of the quantization term.

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'pairs', 'quantization'} (scalars)
    and 'memory' (the updated memory, not a scalar).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import dfh
    >>> memory = dfh.dfh_init_memory(num_train=4, bits=2, num_classes=2)
    >>> outputs = {'hash': jnp.array([[0.9, -0.2], [-0.6, 0.8]])}
    >>> labels = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, aux = dfh.dfh_loss(outputs=outputs, labels=labels, memory=memory,
    ...                          indices=jnp.array([0, 2]))
    >>> print(round(float(aux['pairs']), 3), round(float(aux['quantization']), 3))
    2.857 0.106
    >>> print(aux['memory']['C'])
    [[ 1. -1.]
     [-1.  1.]]

  References:
    Li, Pei, Zha & van Gemert, "Push for Quantization: Deep Fisher Hashing", BMVC 2019,
    Sec. 3 (the margin likelihood, the class centres' Fisher criterion and the
    alternating optimisation of the codes, centres and network).
  """
  u = outputs['hash'].astype(jnp.float32)
  labels = jnp.asarray(labels, jnp.float32)
  const_u, mem_u, mem_y, theta, s = pairs.against_memory(u, labels, memory, indices)
  weights = _label_weights(labels)
  b = pairs.sign(const_u + mu * jnp.matmul(weights, memory['C'].T, precision=_HIGHEST))
  centers = dfh_center_update(centers=memory['C'], codes=b, labels=weights, nu=nu)

  per_pair = s * jax.nn.softplus(margin - theta) + (1.0 - s) * jax.nn.softplus(
    margin + theta
  )
  pair_term = jnp.mean(per_pair)
  quantization = eta * jnp.mean(jnp.square(b - u))
  new_memory = jax.lax.stop_gradient({'U': mem_u, 'Y': mem_y, 'C': centers})
  aux = {'pairs': pair_term, 'quantization': quantization, 'memory': new_memory}
  return pair_term + quantization, aux
