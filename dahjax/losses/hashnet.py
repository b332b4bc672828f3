"""HashNet's loss (Cao, Long, Wang & Yu, "HashNet: Deep Learning to Hash by Continuation",
ICCV 2017): a weighted pairwise maximum likelihood on tanh(beta u) codes, beta raised by a
continuation schedule."""

import jax
import jax.numpy as jnp

from dahjax.losses import pairs


def hashnet_beta(
  step: jax.Array,
  *,
  init_beta: float = 1.0,
  gamma: float = 0.005,
  power: float = 0.5,
  step_size: int = 200,
) -> jax.Array:
  """Computes HashNet's continuation value beta at an optimisation step (counted from 0).

  beta = init_beta (1 + gamma t)^power, t the last multiple of `step_size` reached by
  the iteration count step + 1: beta is init_beta until step step_size - 2, then rises
  every step_size steps. This is the authors' release (thuml/HashNet: Caffe's ScaleTanH
  layer and the PyTorch AlexNetFc both count iterations from 1 and update the scale when
  the count is a multiple of step_size), with its defaults init_scale = 1, gamma = 0.005,
  power = 0.5, step_size = 200. The paper's Algorithm 1 only asks for an increasing
  sequence beta_0 = 1 < beta_1 < ... ; DeepHash-pytorch (HashNet.py) uses
  (epoch // 20 + 1)^0.5 per epoch instead.

  Args:
    step: the optimisation step (scalar int, may be traced).
    init_beta: beta at the start.
    gamma: growth rate.
    power: exponent.
    step_size: steps between two rises.

  Returns:
    beta, a float32 scalar.

  Examples:
    >>> from dahjax.losses import hashnet
    >>> print([round(float(hashnet.hashnet_beta(s)), 4) for s in (0, 198, 199, 399, 9999)])
    [1.0, 1.0, 1.4142, 1.7321, 7.1414]
  """
  count = jnp.asarray(step, jnp.int32) + 1
  reached = (count // step_size) * step_size
  return init_beta * jnp.power(1.0 + gamma * reached.astype(jnp.float32), power)


def hashnet_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  step: jax.Array,
  alpha: float | None = None,
  init_beta: float = 1.0,
  gamma: float = 0.005,
  power: float = 0.5,
  step_size: int = 200,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes HashNet's weighted pairwise negative log-likelihood over the pairs i != j.

  Codes h = tanh(beta u) on the raw outputs u, beta from `hashnet_beta` at this step (the
  paper's learning by continuation: tanh(beta z) tends to sgn(z) as beta grows). Per pair, with
  theta_ij = alpha <h_i, h_j> (the adaptive sigmoid sigma(x) = 1 / (1 + e^(-alpha x))):
  l_ij = log(1 + exp(theta_ij)) - s_ij theta_ij, weighted by
  w_ij = |S| / |S_1| for a similar pair and |S| / |S_0| for a dissimilar one, S_1, S_0
  the similar and dissimilar pairs among the batch's pairs S (the weighted maximum
  likelihood for imbalanced data). The paper's weighted sum is divided by |S|, so that
  loss = mean_{S_1} l_ij + mean_{S_0} l_ij
  (a term is 0 when the batch has no pair of its kind), the form of DeepHash-pytorch
  (HashNet.py, which also counts the pairs i = j) and of the release's
  `pairwise_loss_updated`.

  Where the sources differ. The paper multiplies w_ij by a continuous similarity c_ij
  for multi-label data; here c_ij = 1, as in the release's PyTorch code and
  DeepHash-pytorch. The release's PyTorch `pairwise_loss` replaces |S| / |S_1| by a fixed
  `class_num` (1 in its README; its Caffe configurations use 1 to 100 and, with
  `continous_similarity`, scale a similar pair's gradient by 4 cos^2 of the two label
  vectors); both release versions pair two separate half batches and
  switch to theta (1 - s) above theta = 15, which softplus makes unnecessary. alpha
  defaults to 10 / k, the release's `sigmoid_param` (PyTorch train.py: 10 / hash_bit;
  Caffe: 0.2, "10 / the length of code"); DeepHash-pytorch uses 0.1.

  Args:
    outputs: model outputs with `hash` (raw u, before the tanh) [B, k].
    labels: 0/1 labels [B, C]; a pair that shares a label is similar.
    step: the optimisation step (scalar int), for the continuation.
    alpha: bandwidth of the adaptive sigmoid; defaults to 10 / k.
    init_beta, gamma, power, step_size: the continuation schedule (`hashnet_beta`).

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'likelihood' (the loss), 'beta'}
    (scalars).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import hashnet
    >>> outputs = {'hash': jnp.array([[1.0, -1.0], [0.5, -1.5], [0.5, -0.5]])}
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> loss, aux = hashnet.hashnet_loss(outputs=outputs, labels=labels, step=0)
    >>> print(round(float(loss), 4), round(float(aux['beta']), 4))
    3.3802 1.0

  References:
    Cao, Long, Wang & Yu, "HashNet: Deep Learning to Hash by Continuation", ICCV 2017,
    Sec. 3 (the weighted maximum likelihood: the weights w_ij, the adaptive sigmoid and
    the loss; learning by continuation, Algorithm 1).
  """
  u = outputs['hash'].astype(jnp.float32)
  n, k = u.shape
  pairs.check_batch_size(n)
  alpha = 10.0 / k if alpha is None else alpha
  beta = hashnet_beta(
    step, init_beta=init_beta, gamma=gamma, power=power, step_size=step_size
  )
  h = jnp.tanh(beta * u)
  theta = alpha * (h @ h.T)
  s = pairs.pairwise_similarity(labels)
  per_pair = jax.nn.softplus(theta) - s * theta
  similar_mean, dissimilar_mean = pairs.balanced_pair_means(per_pair, s)
  loss = similar_mean + dissimilar_mean
  return loss, {'likelihood': loss, 'beta': beta}
