"""Hash layers: the continuous relaxation used in training and its binarisation.

DAH ("Image Retrieval Using a Deep Attention-Based Hash", Li et al., IEEE Access 2020)
squashes the hash layer into (1/4, 3/4) with a "shrink sigmoid" and thresholds it at 1/2.
DPFAH ("Deep parameter-free attention hashing for image retrieval", Scientific Reports
2022) keeps the hash layer's raw output u, trains on clip(u, -1, 1) and takes sign(u);
its classifier runs beside the hash layer on the backbone's features.

Binary codes are 0/1 uint8 arrays everywhere in dahjax (bit 1 for DPFAH's +1).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def pool_features(x: jax.Array) -> jax.Array:
  """Global average pool of NHWC features [B, H, W, C] -> [B, C], in float32.

  The pooled features and the heads stay in float32 whatever the backbone's dtype: the
  losses compare codes with each other, and bfloat16 would quantise them to steps the
  pairwise terms cannot resolve.
  """
  return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def shrink_sigmoid(x: jax.Array) -> jax.Array:
  """DAH eq. 1: 1/4 + 1 / (2 (1 + exp(-x))), with range (1/4, 3/4)."""
  return 0.25 + 0.5 * nn.sigmoid(x)


def shrink_sigmoid_codes(h: jax.Array) -> jax.Array:
  """DAH eq. 5: bit 1 where h > 1/2, else 0 (h == 1/2 maps to 0). Returns uint8."""
  return (h > 0.5).astype(jnp.uint8)


HASH_LAYERS = ('shrink_sigmoid', 'linear')


class ShrinkSigmoidHashHead(nn.Module):
  """Dense(bits) -> shrink sigmoid -> Dense(num_classes): classification after hashing.

  Returns a dict with `hash` (continuous codes in (1/4, 3/4)) and `logits`. With
  `activation='linear'` the hash layer is left unconstrained (no shrink sigmoid): the
  classifier then sees a plain bottleneck of the same width, the ceiling against which
  the shrink sigmoid's cost is measured; its codes are thresholded at 0.
  """
  bits: int
  num_classes: int
  dtype: jnp.dtype = jnp.float32
  activation: str = 'shrink_sigmoid'

  @nn.compact
  def __call__(self, features: jax.Array) -> dict[str, jax.Array]:
    h = nn.Dense(self.bits, dtype=self.dtype, name='hash')(features)
    if self.activation == 'shrink_sigmoid':
      h = shrink_sigmoid(h)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(h)
    return {'hash': h, 'logits': logits}


def clip_codes(u: jax.Array) -> jax.Array:
  """DPFAH eq. 2: f(u) = clip(u, -1, 1), the relaxed codes of the pairwise loss."""
  return jnp.clip(u, -1.0, 1.0)


def sign_codes(u: jax.Array) -> jax.Array:
  """DPFAH's codes: bit 1 (sign +1) where u >= 0, else 0 (-1). Returns uint8.

  The paper's eq. 3 swaps the two signs, a typo (SPEC 3.2).
  """
  return (u >= 0).astype(jnp.uint8)


class ParallelHashHead(nn.Module):
  """Dense(bits) -> u and, beside it, Dense(num_classes) -> logits, both on the features.

  Returns a dict with `hash` (u, unbounded) and `logits`.
  """
  bits: int
  num_classes: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array) -> dict[str, jax.Array]:
    u = nn.Dense(self.bits, dtype=self.dtype, name='hash')(features)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(features)
    return {'hash': u, 'logits': logits}
