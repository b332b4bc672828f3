"""Hash layers: the continuous relaxation used in training and its binarisation.

DAH ("Image Retrieval Using a Deep Attention-Based Hash", Li et al., IEEE Access 2020)
squashes the hash layer into (1/4, 3/4) with a "shrink sigmoid" and thresholds it at 1/2.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def shrink_sigmoid(x: jax.Array) -> jax.Array:
  """DAH eq. 1: 1/4 + 1 / (2 (1 + exp(-x))), with range (1/4, 3/4)."""
  return 0.25 + 0.5 * nn.sigmoid(x)


def shrink_sigmoid_codes(h: jax.Array) -> jax.Array:
  """DAH eq. 5: bit 1 where h > 1/2, else 0 (h == 1/2 maps to 0). Returns uint8."""
  return (h > 0.5).astype(jnp.uint8)


class ShrinkSigmoidHashHead(nn.Module):
  """Dense(bits) -> shrink sigmoid -> Dense(num_classes): classification after hashing.

  Returns a dict with `hash` (continuous codes in (1/4, 3/4)) and `logits`.
  """
  bits: int
  num_classes: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array) -> dict[str, jax.Array]:
    h = shrink_sigmoid(nn.Dense(self.bits, dtype=self.dtype, name='hash')(features))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(h)
    return {'hash': h, 'logits': logits}
