"""DPSH's loss (Li, Wang & Kang, "Feature Learning based Deep Supervised Hashing with Pairwise
Labels", IJCAI 2016): the negative log-likelihood of the pairwise labels against a memory of the
whole training set, and a pull of the outputs towards their signs."""

import jax
import jax.numpy as jnp

from dahjax.losses import pairs


def dpsh_init_memory(
  *, num_train: int, bits: int, num_classes: int
) -> dict[str, jax.Array]:
  """DPSH's initial state: a zero memory of outputs and labels.

  A row stays zero until its image is first in a batch, as in the authors' release and
  DeepHash-pytorch (both start U, Y at zeros): such a row has Theta = 0 and s = 0, so its
  pairs add the constant log 2 to the loss and nothing to the gradient.

  Args:
    num_train: N, the training images.
    bits: k.
    num_classes: C.

  Returns:
    {'U': [N, k] outputs, 'Y': [N, C] labels}, float32 zeros.

  Examples:
    >>> from dahjax.losses import dpsh
    >>> memory = dpsh.dpsh_init_memory(num_train=5, bits=4, num_classes=3)
    >>> print({name: a.shape for name, a in sorted(memory.items())})
    {'U': (5, 4), 'Y': (5, 3)}
  """
  return {
    'U': jnp.zeros((num_train, bits), jnp.float32),
    'Y': jnp.zeros((num_train, num_classes), jnp.float32),
  }


def dpsh_loss(
  *,
  outputs: dict[str, jax.Array],
  labels: jax.Array,
  memory: dict[str, jax.Array],
  indices: jax.Array,
  eta: float = 10.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Computes DPSH's loss for a batch against the memory of all N training images.

  DPSH's relaxed objective (Sec. 3, "Model and Learning"), on the raw outputs
  u_i = W^T phi(x_i) + v (no activation) with Theta_ij = 1/2 u_i^T u_j and b_i = sgn(u_i),
  is J = -sum_{s_ij} (s_ij Theta_ij - log(1 + e^Theta_ij)) + eta sum_i ||b_i - u_i||^2,
  and its gradient for the network (Sec. 3, Algorithm 1) is
  dJ/du_i = 1/2 sum_j (a_ij - s_ij) u_j + 1/2 sum_j (a_ji - s_ji) u_j + 2 eta (u_i - b_i),
  a_ij = sigmoid(Theta_ij), the sums over all training images j.

  The loss is J's part that depends on the batch's outputs, divided by B N, with the u_j
  of all N images (the batch's own included, j = i too) read from the memory U: a
  constant, whose batch rows are first overwritten with the current outputs, as the
  authors' group's release (jiangqy/DPSH-pytorch) and DeepHash-pytorch do:
  loss = 2 mean_{i in batch, j < N} [softplus(Theta_ij) - s_ij Theta_ij]
         + (eta / N) mean_i ||b_i - u_i||^2.
  Each pair is in J twice, as (i, j) and (j, i); with the memory constant only the
  batch's side has a gradient, hence the 2: the loss's gradient is exactly dJ/du_i divided
  by B N. b_i is a constant (the paper's alternating step fixes B = sgn(U)).

  Where the sources differ. jiangqy/DPSH-pytorch (DPSH_CIFAR_10.py) divides the same
  sums by N B but counts the likelihood once, which halves its pair gradient against
  the paper's; DeepHash-pytorch (DPSH.py) also counts it once, takes means over the B N
  pairs and the B k bits, and weights the quantization by alpha = 0.1 (eta = alpha N / k
  against the likelihood counted once: 10 for N = 5,000 and k = 48). This follows the
  paper's gradient. softplus replaces their log-sum-exp trick (the same value).

  eta = 10 is the value of the authors' group's CIFAR-10 demo (jiangqy/DPSH-pytorch,
  DPSH_CIFAR_10_demo.py: lamda = 10; its NUS-WIDE script uses 50).

  Args:
    outputs: model outputs with `hash` (raw u) [B, k].
    labels: 0/1 labels [B, C]; a pair that shares a label is similar.
    memory: {'U' [N, k], 'Y' [N, C]} (`dpsh_init_memory`).
    indices: int32 [B], each batch image's row 0..N-1 in the memory.
    eta: weight of the quantization term ||b_i - u_i||^2.

  Returns:
    `(loss, aux)`: the scalar float32 loss and `aux` = {'likelihood', 'quantization'} (the
    two terms, scalars) and 'memory' (the updated memory, not a scalar).

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.losses import dpsh
    >>> memory = dpsh.dpsh_init_memory(num_train=4, bits=2, num_classes=2)
    >>> outputs = {'hash': jnp.array([[0.9, -0.2], [-0.6, 0.8]])}
    >>> labels = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, aux = dpsh.dpsh_loss(outputs=outputs, labels=labels, memory=memory,
    ...                            indices=jnp.array([0, 2]))
    >>> print(round(float(aux['likelihood']), 4), round(float(aux['quantization']), 4))
    1.2041 1.0625
    >>> print(aux['memory']['U'])
    [[ 0.9 -0.2]
     [ 0.   0. ]
     [-0.6  0.8]
     [ 0.   0. ]]

  References:
    Li, Wang & Kang, "Feature Learning based Deep Supervised Hashing with Pairwise
    Labels", IJCAI 2016, Sec. 3 (the likelihood of the pairwise labels, the relaxed
    objective with the quantization term, its gradient and Algorithm 1).
  """
  u = outputs['hash'].astype(jnp.float32)
  labels = jnp.asarray(labels, jnp.float32)
  n = memory['U'].shape[0]
  const_u, mem_u, mem_y, theta, s = pairs.against_memory(u, labels, memory, indices)

  likelihood = 2.0 * jnp.mean(jax.nn.softplus(theta) - s * theta)
  b = pairs.sign(const_u)
  quantization = (eta / n) * jnp.mean(jnp.sum(jnp.square(b - u), axis=-1))
  aux = {
    'likelihood': likelihood,
    'quantization': quantization,
    'memory': jax.lax.stop_gradient({'U': mem_u, 'Y': mem_y}),
  }
  return likelihood + quantization, aux
