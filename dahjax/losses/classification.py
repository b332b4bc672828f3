"""Classification losses that the hashing methods add to their pairwise terms."""

import jax
import jax.numpy as jnp
import optax


def softmax_cross_entropy(*, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Computes the softmax cross-entropy, averaged over the batch.

  Multi-hot labels are spread evenly over their classes, so a row of labels is always a
  distribution.

  Args:
    logits: unnormalised class scores [B, C].
    labels: 0/1 labels [B, C] (one-hot or multi-hot).

  Returns:
    The scalar mean cross-entropy, float32.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> logits = jnp.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> print(round(float(losses.softmax_cross_entropy(logits=logits, labels=labels)), 4))
    0.3157

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.B (the classification loss).
  """
  labels = jnp.asarray(labels, jnp.float32)
  targets = labels / jnp.maximum(jnp.sum(labels, axis=-1, keepdims=True), 1.0)
  return jnp.mean(optax.softmax_cross_entropy(logits, targets))


def sigmoid_cross_entropy(*, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Computes DPFAH's classification loss L3: sigmoid cross-entropy over the classes.

  L3 = mean_i sum_c [sigmoid cross-entropy of o_ic against y_ic]: every class is its
  own binary decision, so multi-hot labels need no special case. The paper sums over
  the images; the mean keeps the loss's scale independent of B.

  Args:
    logits: classifier outputs o [B, C].
    labels: 0/1 labels [B, C] (one-hot or multi-hot).

  Returns:
    The scalar L3, dtype of `logits`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax import losses
    >>> logits = jnp.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    >>> labels = jnp.array([[1, 0], [1, 0], [0, 1]])
    >>> print(round(float(losses.sigmoid_cross_entropy(logits=logits, labels=labels)), 4))
    1.0889

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, eq. 14.
  """
  return jnp.mean(
    jnp.sum(
      optax.sigmoid_binary_cross_entropy(logits, jnp.asarray(labels, logits.dtype)), axis=-1
    )
  )
