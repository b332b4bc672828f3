"""DSDH's loss (Li, Sun, He & Tan, "Deep Supervised Discrete Hashing", NeurIPS 2017): the
pairwise likelihood of the outputs against a memory of the whole training set, a pull towards
discrete codes B, and B with a linear classifier W learnt by alternating discrete steps."""

import jax
import jax.numpy as jnp

from dahjax.losses import pairs

# The discrete steps take signs of sums and solve a ridge system: full float32 products, not
# the faster reduced-precision ones an accelerator may use by default.
_HIGHEST = jax.lax.Precision.HIGHEST


def dsdh_init_memory(
  *, num_train: int, bits: int, num_classes: int
) -> dict[str, jax.Array]:
  """DSDH's initial state: every array zero.

  A zero row of B means "no code yet": the first time an image is in a batch its row is
  set to sgn(u_i) (as the authors' release sets B(ix, :) = sign(U0)); the first B, W update
  then starts from those codes. W = 0 until the first update.

  Args:
    num_train: N, the training images.
    bits: k.
    num_classes: C.

  Returns:
    {'U': [N, k] outputs, 'Y': [N, C] labels, 'B': [N, k] codes, 'W': [k, C] classifier},
    all float32 zeros.

  Examples:
    >>> from dahjax.losses import dsdh
    >>> memory = dsdh.dsdh_init_memory(num_train=5, bits=4, num_classes=3)
    >>> print({name: a.shape for name, a in sorted(memory.items())})
    {'B': (5, 4), 'U': (5, 4), 'W': (4, 3), 'Y': (5, 3)}
  """
  zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
  return {
    'U': zeros(num_train, bits),
    'Y': zeros(num_train, num_classes),
    'B': zeros(num_train, bits),
    'W': zeros(bits, num_classes),
  }


def _w_step(codes: jax.Array, labels: jax.Array, ridge: float) -> jax.Array:
  """W = (B^T B + ridge I)^-1 B^T Y, with B as rows [N, k]: the ridge regression of Y on B."""
  k = codes.shape[-1]
  gram = jnp.matmul(codes.T, codes, precision=_HIGHEST) + ridge * jnp.eye(
    k, dtype=codes.dtype
  )
  return jnp.linalg.solve(gram, jnp.matmul(codes.T, labels, precision=_HIGHEST))


def _b_sweep(codes: jax.Array, weights: jax.Array, target: jax.Array) -> jax.Array:
  """One DCC sweep: bit r of every code set to sgn(p_r - B'_r W'_r^T w_r), r = 0..k-1 in turn.

  `target` is P = Y W^T + (eta / mu) U [N, k]. B'_r W'_r^T w_r = sum_{l != r} b_l (w_l . w_r)
  over the other bits' current values, taken from the k x k Gram matrix of W's rows.
  """
  gram = jnp.matmul(weights, weights.T, precision=_HIGHEST)

  def bit(r, b):
    others = jnp.matmul(b, gram[:, r], precision=_HIGHEST) - b[:, r] * gram[r, r]
    return b.at[:, r].set(pairs.sign(target[:, r] - others))

  return jax.lax.fori_loop(0, codes.shape[-1], bit, codes)


def dsdh_discrete_update(
  *,
  codes: jax.Array,
  outputs: jax.Array,
  labels: jax.Array,
  mu: float = 1.0,
  nu: float = 0.1,
  eta: float = 55.0,
  dcc_iter: int = 10,
) -> tuple[jax.Array, jax.Array]:
  """DSDH's alternating W-step and B-step on the whole training set.

  With U (the outputs) fixed, J's terms in B and W are
  mu ||Y - W^T B||_F^2 + nu ||W||_F^2 + eta ||B - U||_F^2 (paper's notation, B [k, N]).
  The W-step is its closed-form minimiser W = (B B^T + nu/mu I)^-1 B Y^T (a ridge
  regression); the B-step minimises ||W^T B||^2 - 2 tr(B^T P) with P = W Y + (eta/mu) U over
  B in {-1, +1}^{k x N} by discrete cyclic coordinate descent, one bit (row z of B) at a time
  with the others fixed: z = sgn(p - B'^T W' v), where p, v are that bit's rows of P, W and
  B', W' the other rows. Each of the `dcc_iter` rounds is a W-step then one sweep of the
  bits, in that order, as in DeepHash-pytorch's `updateBandW` (10 rounds). Here B is stored
  as rows [N, k]; sgn(0) = +1.

  Args:
    codes: the current codes B [N, k] (+-1; a zero start gives W = 0, then B = sgn(U)).
    outputs: the memory of network outputs U [N, k].
    labels: 0/1 labels Y [N, C].
    mu: weight of the classification term.
    nu: weight of ||W||^2.
    eta: weight of the quantization term.
    dcc_iter: rounds of (W-step, B sweep).

  Returns:
    `(codes, weights)`: the new B [N, k] (+-1) and the W [k, C] of the last W-step.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import dsdh
    >>> u = jnp.array([[0.9, -0.2], [0.7, 0.4], [-0.6, 0.8], [-1.1, -0.3]])
    >>> y = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> b, w = dsdh.dsdh_discrete_update(codes=jnp.zeros((4, 2)), outputs=u, labels=y)
    >>> print(b)
    [[ 1. -1.]
     [ 1.  1.]
     [-1.  1.]
     [-1. -1.]]
  """
  labels = jnp.asarray(labels, jnp.float32)
  outputs = jnp.asarray(outputs, jnp.float32)

  def round_(_, state):
    b, _w = state
    w = _w_step(b, labels, nu / mu)
    target = jnp.matmul(labels, w.T, precision=_HIGHEST) + (eta / mu) * outputs
    return _b_sweep(b, w, target), w

  weights = jnp.zeros((outputs.shape[-1], labels.shape[-1]), jnp.float32)
  return jax.lax.fori_loop(0, dcc_iter, round_, (jnp.asarray(codes, jnp.float32), weights))


def dsdh_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  memory: dict[str, jax.Array],
  indices: jax.Array,
  step: jax.Array,
  mu: float = 1.0,
  nu: float = 0.1,
  eta: float = 55.0,
  dcc_iter: int = 10,
  update_every: int | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DSDH's loss for a batch against the memory of all N training images.

  DSDH's relaxed objective, with Theta_ij = 1/2 u_i^T u_j on the raw outputs u and codes
  b_i in {-1, +1}^k, is
  J = -sum_{s_ij} (s_ij Theta_ij - log(1 + e^Theta_ij)) + mu sum_i ||y_i - W^T b_i||^2
      + nu ||W||_F^2 + eta sum_i ||b_i - u_i||^2,
  minimised alternately over the network, W and B. Its gradient for the network is
  dJ/du_i = 1/2 sum_j (a_ij - s_ij) u_j + 1/2 sum_j (a_ji - s_ji) u_j + 2 eta (u_i - b_i),
  a_ij = sigmoid(Theta_ij).

  Network step. The loss is J's part that depends on the batch's outputs, divided by B N,
  with the u_j of all N images (the batch's own included) read from the memory U: a
  constant, whose batch rows are first overwritten with the current outputs, as the
  authors' release and DeepHash-pytorch do:
  loss = 2 mean_{i in batch, j < N} [softplus(Theta_ij) - s_ij Theta_ij]
         + (eta / N) mean_i ||b_i - u_i||^2.
  Each pair is in J twice, as (i, j) and (j, i); with the memory constant only the batch's
  side has a gradient, hence the 2: the loss's gradient is exactly dJ/du_i / (B N). The
  authors' release (liqi-casia/DSDH-HashingCode, train.m) back-propagates the same
  (S - A) U - 2 eta (U0 - B) and divides the weights' gradient by batch_size N.
  DeepHash-pytorch (DSDH.py) puts no eta term in the network's loss (its eta only enters
  the B-step) and the likelihood once; this follows the paper's gradient. softplus replaces
  their clamp of Theta to [-100, 50].

  Codes and classifier. b_i is the memory's row of B; a row still zero (the image not yet
  seen by an update) is set to sgn(u_i) and stored (the release overwrites the batch's rows
  with B(ix, :) = sign(U0) at every batch, then solves its per-batch B).
  At the steps where step + 1 is a multiple of `update_every`, after the loss,
  `dsdh_discrete_update` recomputes W (ridge regression) and all of B (DCC, bit by bit) from
  the whole memory. `update_every` defaults to N // B, one epoch of this repository's
  sampler: the paper's Algorithm 1 updates W and B once per pass over the mini-batches, and
  DeepHash-pytorch's current DSDH.py calls `updateBandW` once per epoch (at the epoch's
  start, here after its last step), as TreezzZ/DSDH_PyTorch does after each epoch (one W-step
  and one sweep, with defaults mu = 0.01, nu = 1, eta = 0.01; its earlier versions updated
  at every iteration, `update_every=1`); the authors' release solves a W and a B for
  each batch alone instead (W from the batch's sgn(u) with lambda = 0.1, 10 DCC sweeps) and
  keeps only sgn(u) in its memory of B.

  Defaults mu = 1, nu = 0.1, eta = 55 are the authors' release's (main.m: eta = 55; RRC's
  ridge lambda = nu / mu = 0.1; the B-step's Q = eta U0 + Y W^T, i.e. mu = 1);
  DeepHash-pytorch uses nu = 1. dcc_iter = 10 is DeepHash-pytorch's and the release's (10
  DCC sweeps).

  Args:
    outputs: model outputs with `hash` (raw u) [B, k].
    labels: 0/1 labels [B, C]; a pair that shares a label is similar.
    memory: {'U' [N, k], 'Y' [N, C], 'B' [N, k], 'W' [k, C]} (`dsdh_init_memory`).
    indices: int32 [B], each batch image's row 0..N-1 in the memory.
    step: the optimisation step (scalar int), for the B, W update schedule.
    mu: weight of the classification term (enters the updates as nu / mu, eta / mu).
    nu: weight of ||W||_F^2.
    eta: weight of the quantization term ||b_i - u_i||^2.
    dcc_iter: rounds of (W-step, B sweep) in each update.
    update_every: steps between B, W updates; defaults to N // B (once per epoch).

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'likelihood', 'quantization'} (the
    two terms of the loss), 'classification' (mean_i ||y_i - W^T b_i||^2 over the batch with
    the memory's W: J's classification term, logged only, as it has no gradient for the
    network) and 'memory' (the updated memory, not a scalar).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import dsdh
    >>> memory = dsdh.dsdh_init_memory(num_train=4, bits=2, num_classes=2)
    >>> outputs = {'hash': jnp.array([[0.9, -0.2], [-0.6, 0.8]])}
    >>> labels = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, aux = dsdh.dsdh_loss(outputs=outputs, labels=labels, memory=memory,
    ...                            indices=jnp.array([0, 2]), step=0)
    >>> print(round(float(aux['likelihood']), 4), round(float(aux['quantization']), 4))
    1.2041 5.8438
    >>> print(aux['memory']['B'])
    [[ 1. -1.]
     [ 0.  0.]
     [-1.  1.]
     [ 0.  0.]]

  References:
    Li, Sun, He & Tan, "Deep Supervised Discrete Hashing", NeurIPS 2017, Sec. 3 (the
    objective, its gradient, the W- and B-steps and Algorithm 1).
  """
  u = outputs['hash'].astype(jnp.float32)
  labels = jnp.asarray(labels, jnp.float32)
  n = memory['U'].shape[0]
  const_u, mem_u, mem_y, theta, s = pairs.against_memory(u, labels, memory, indices)
  seen = memory['B'][indices]
  b = jnp.where(jnp.all(seen == 0, axis=-1, keepdims=True), pairs.sign(const_u), seen)
  mem_b = memory['B'].at[indices].set(b)

  likelihood = 2.0 * jnp.mean(jax.nn.softplus(theta) - s * theta)
  quantization = (eta / n) * jnp.mean(jnp.sum(jnp.square(b - u), axis=-1))
  classification = jnp.mean(jnp.sum(jnp.square(labels - b @ memory['W']), axis=-1))

  every = max(1, n // u.shape[0]) if update_every is None else update_every
  new_b, new_w = jax.lax.cond(
    (jnp.asarray(step) + 1) % every == 0,
    lambda: dsdh_discrete_update(
      codes=mem_b, outputs=mem_u, labels=mem_y, mu=mu, nu=nu, eta=eta, dcc_iter=dcc_iter
    ),
    lambda: (mem_b, memory['W']),
  )
  new_memory = jax.lax.stop_gradient({'U': mem_u, 'Y': mem_y, 'B': new_b, 'W': new_w})
  aux = {
    'likelihood': likelihood,
    'quantization': quantization,
    'classification': jax.lax.stop_gradient(classification),
    'memory': new_memory,
  }
  return likelihood + quantization, aux
