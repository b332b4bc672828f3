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

from dahjax.models import conv


def pool_features(x: jax.Array) -> jax.Array:
  """Computes the global average pool of NHWC features, in float32.

  The pooled features and the heads stay in float32 whatever the backbone's dtype: the
  losses compare codes with each other, and bfloat16 would quantise them to steps the
  pairwise terms cannot resolve.

  Args:
    x: backbone features [B, H, W, C], any float dtype.

  Returns:
    float32 [B, C], the mean over the H x W positions.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.models import heads
    >>> x = jnp.arange(8.0, dtype=jnp.bfloat16).reshape(1, 2, 2, 2)
    >>> pooled = heads.pool_features(x)
    >>> print(pooled, pooled.dtype)
    [[3. 4.]] float32
  """
  return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def shrink_sigmoid(x: jax.Array) -> jax.Array:
  """Computes DAH's shrink sigmoid 1/4 + 1 / (2 (1 + exp(-x))), with range (1/4, 3/4).

  Args:
    x: hash layer pre-activations, any shape.

  Returns:
    Values in (1/4, 3/4), same shape and dtype as `x`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from dahjax.models import heads
    >>> print(np.round(np.asarray(heads.shrink_sigmoid(jnp.array([-2.0, 0.0, 2.0]))), 4))
    [0.3096 0.5    0.6904]

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.A, eq. 1.
  """
  return 0.25 + 0.5 * nn.sigmoid(x)


def shrink_sigmoid_codes(h: jax.Array) -> jax.Array:
  """Computes DAH's binary codes: bit 1 where h > 1/2, else 0.

  The paper's eq. 5 leaves h == 1/2 open; it maps to 0 here.

  Args:
    h: shrink-sigmoid outputs [B, k].

  Returns:
    uint8 0/1 codes [B, k].

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.models import heads
    >>> print(heads.shrink_sigmoid_codes(jnp.array([[0.3, 0.5, 0.7, 0.6]])))
    [[0 0 1 1]]

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.B, eq. 5.
  """
  return (h > 0.5).astype(jnp.uint8)


HASH_LAYERS = ('shrink_sigmoid', 'linear')
# What DAH's classifier reads: the codes h (Table 1), or 4 (h - 1/2), the same codes
# centred and stretched to (-1, 1) (not in the paper; see ShrinkSigmoidHashHead), or the
# sign codes without a bias, through the straight-through gradient (GreedyHash's head,
# for comparing methods on DAH's backbone).
CLASSIFIER_INPUTS = ('codes', 'centered', 'sign_codes')


class ShrinkSigmoidHashHead(nn.Module):
  """DAH's head: Dense(bits) -> shrink sigmoid -> Dense(num_classes).

  The classifier sits after the hash layer (classification after hashing), so the
  class loss also shapes the codes. With `activation='linear'` the hash layer is left
  unconstrained (no shrink sigmoid): the classifier then sees a plain bottleneck of the
  same width, the ceiling against which the shrink sigmoid's cost is measured; its
  codes are thresholded at 0.

  Attributes:
    bits: code length k.
    num_classes: number of classes C.
    dtype: computation dtype (parameters stay float32).
    activation: 'shrink_sigmoid' (DAH) or 'linear' (a diagnostic, not DAH).
    classifier_input: 'codes' (DAH: the classifier reads h) or 'centered' (it reads
      4 (h - 1/2), in (-1, 1); not in the paper). Both give the same family of
      classifiers, an affine map of h, but Adam moves each weight by about its learning
      rate per step whatever the input's scale: on h in (1/4, 3/4), whose spread is a
      quarter of that of the centred input and whose mean adds to the bias, confident
      logits need weights about four times larger, reached about four times later
      (docs/results.md, diagnosis). With a linear hash layer it has no effect.
      'sign_codes': a classifier without bias on the binary codes as +-1 (the sign of
      the hash layer's pre-activation, whose bits are the codes' with either
      activation), its gradient passed straight through (GreedyHash Sec. 3; with
      `activation='linear'` this is GreedyHash's head on this backbone).

  Returns from `__call__(features)` (features [B, F]) a dict: `hash` [B, bits]
  (continuous codes in (1/4, 3/4)) and `logits` [B, num_classes].

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import heads
    >>> head = heads.ShrinkSigmoidHashHead(bits=4, num_classes=3)
    >>> features = jnp.ones((2, 8))
    >>> out = head.apply(head.init(jax.random.key(0), features), features)
    >>> print({name: value.shape for name, value in out.items()})
    {'hash': (2, 4), 'logits': (2, 3)}
    >>> print(bool(jnp.all((out['hash'] > 0.25) & (out['hash'] < 0.75))))
    True

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.A and Table 1.
  """

  bits: int
  num_classes: int
  dtype: jnp.dtype = jnp.float32
  activation: str = 'shrink_sigmoid'
  classifier_input: str = 'codes'

  @nn.compact
  def __call__(self, features: jax.Array) -> dict[str, jax.Array]:
    pre = nn.Dense(self.bits, dtype=self.dtype, name='hash')(features)
    h = seen = pre
    if self.activation == 'shrink_sigmoid':
      h = shrink_sigmoid(pre)
      seen = 4.0 * (h - 0.5) if self.classifier_input == 'centered' else h
    if self.classifier_input == 'sign_codes':
      seen = pre  # Its sign: the codes' bits with either activation.
    reads = 'sign_codes' if self.classifier_input == 'sign_codes' else 'codes'
    logits = classify(features, seen, reads, self.num_classes, dtype=self.dtype)
    return {'hash': h, 'logits': logits}


def clip_codes(u: jax.Array) -> jax.Array:
  """Computes DPFAH's relaxed codes f(u) = clip(u, -1, 1), the input of the pairwise loss.

  Args:
    u: raw hash layer outputs [B, l].

  Returns:
    Values in [-1, 1], same shape and dtype as `u`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.models import heads
    >>> print(heads.clip_codes(jnp.array([[-1.5, -0.25, 0.0, 0.5, 1.25]])))
    [[-1.   -0.25  0.    0.5   1.  ]]

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, eq. 2.
  """
  return jnp.clip(u, -1.0, 1.0)


def sign_codes(u: jax.Array) -> jax.Array:
  """Computes DPFAH's binary codes b = sign(u) as 0/1: bit 1 (+1) where u >= 0, else 0 (-1).

  The paper's eq. 3 defines sign(x) as -1 for x >= 0 and +1 otherwise: the two signs
  are swapped, a typo. We use the usual sign, keeping eq. 3's boundary (0 goes with
  the non-negative values, so sign(0) = +1). Inverting every bit would change no
  Hamming distance.

  Args:
    u: raw hash layer outputs [B, l].

  Returns:
    uint8 0/1 codes [B, l].

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.models import heads
    >>> print(heads.sign_codes(jnp.array([[-1.5, -0.2, 0.0, 0.7, 1.3]])))
    [[0 0 1 1 1]]

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, eqs. 3 and 17.
  """
  return (u >= 0).astype(jnp.uint8)


@jax.custom_vjp
def greedy_sign(u: jax.Array) -> jax.Array:
  """GreedyHash's hash layer: b = sgn(u) forward, the gradient passed through unchanged.

  Forward, every bit is -1 or +1, with sgn(0) = +1 (bit 1 where u >= 0, the repository's
  convention; the release's torch.sign gives 0 there). Backward, dL/du = dL/db: the
  straight-through gradient of the paper's hash coding layer (Sec. 3).

  Args:
    u: raw hash layer outputs, any shape.

  Returns:
    +-1 codes, same shape and dtype as `u`.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import heads
    >>> u = jnp.array([-0.5, 0.0, 2.0])
    >>> print(heads.greedy_sign(u))
    [-1.  1.  1.]
    >>> weights = jnp.array([1.0, 2.0, 3.0])
    >>> print(jax.grad(lambda u: jnp.sum(weights * heads.greedy_sign(u)))(u))
    [1. 2. 3.]

  References:
    Su, Zhang, Han & Tian, "Greedy Hash: Towards Fast Optimization for Accurate Hash Coding
    in CNN", NeurIPS 2018, Sec. 3 (the hash coding layer).
  """
  return jnp.where(u >= 0, 1.0, -1.0).astype(u.dtype)


def _greedy_sign_fwd(u):
  return greedy_sign(u), None


def _greedy_sign_bwd(_, g):
  return (g,)


greedy_sign.defvjp(_greedy_sign_fwd, _greedy_sign_bwd)


HASH_NORMS = ('none', 'batchnorm')


def check_hash_norm(norm: str) -> None:
  """Raises ValueError, listing the valid names, for an unknown hash layer norm."""
  if norm not in HASH_NORMS:
    raise ValueError(f'Unknown model.hash_norm {norm!r}; valid: {", ".join(HASH_NORMS)}.')


# What a parallel head's classifier reads: the backbone's features (DPFAH), the hash
# layer's output (DAH: classification after hashing) or the sign codes sgn(u) through the
# straight-through gradient, without a bias (GreedyHash).
CLASSIFIER_READS = ('features', 'codes', 'sign_codes')
# The hash layer's activation: none (the raw u of DPFAH, DSH and most methods) or DAH's
# shrink sigmoid.
HASH_ACTIVATIONS = ('none', 'shrink_sigmoid')


def check_head(model_name: str, hash_activation: str, classifier_reads: str) -> None:
  """Raises ValueError, listing the valid names, for an unknown head setting."""
  for name, value, valid in (
    ('hash_activation', hash_activation, HASH_ACTIVATIONS),
    ('classifier_reads', classifier_reads, CLASSIFIER_READS),
  ):
    if value not in valid:
      raise ValueError(
        f'Unknown model.{name} {value!r} for {model_name}; valid: {", ".join(valid)}.'
      )


def head_codes(hash_activation: str, h: jax.Array) -> jax.Array:
  """0/1 uint8 codes of a head's output `h`: sgn(u), or h > 1/2 after the shrink sigmoid."""
  if hash_activation == 'shrink_sigmoid':
    return shrink_sigmoid_codes(h)
  return sign_codes(h)


def classify(
  features: jax.Array,
  h: jax.Array,
  reads: str,
  num_classes: int,
  **dense_kwargs,
) -> jax.Array:
  """The logits of a classifier that reads `features`, the codes `h` or sgn(h)
  (`CLASSIFIER_READS`); a Flax submodule call, so only inside a compact module."""
  if reads == 'sign_codes':
    return nn.Dense(num_classes, use_bias=False, name='classifier', **dense_kwargs)(
      greedy_sign(h)
    )
  return nn.Dense(num_classes, name='classifier', **dense_kwargs)(
    h if reads == 'codes' else features
  )


class ParallelHashHead(nn.Module):
  """DPFAH's heads: Dense(bits) -> u and, beside it, Dense(num_classes) -> logits.

  Both branches read the backbone's features: u = W^T phi + v is the hash layer
  (unbounded; the losses clip it), and the classification branch runs in parallel.

  With `norm='batchnorm'` (not in the paper) u is batch-normalised, every bit centred
  on the batch (on the running mean when encoding). From a random initialisation the
  features of all images point the same way (ReLU outputs, pooled), so the paper's u
  gives nearly one code for every image: for DPFAH's ResNet18 at 32 px the batch's mean
  code is 90-94% as long as a code, and L1's gradient then mostly shrinks every code
  towards 0, where it vanishes. Centred bits start apart.

  `activation` and `classifier_reads` give other methods their heads on the same
  backbone, for comparing them (`dahjax.comparison`): DAH's (the shrink sigmoid, the
  classifier reading its output, DAH Sec. III.A) and GreedyHash's (a classifier without
  bias on sgn(u) with the straight-through gradient, GreedyHash Sec. 3).

  Attributes:
    bits: code length l.
    num_classes: number of classes C.
    norm: 'none' (DPFAH) or 'batchnorm' on u.
    activation: 'none' (DPFAH) or 'shrink_sigmoid' (DAH) after the hash layer.
    classifier_reads: 'features' (DPFAH), 'codes' or 'sign_codes' (`CLASSIFIER_READS`).
    dtype: computation dtype (parameters stay float32).

  Returns from `__call__(features, train)` (features [B, F]) a dict: `hash` (u, or its
  shrink sigmoid) [B, bits] and `logits` [B, num_classes].

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import heads
    >>> head = heads.ParallelHashHead(bits=4, num_classes=3)
    >>> variables = head.init(jax.random.key(0), jnp.ones((2, 8)))
    >>> print(jax.tree.map(lambda p: p.shape, variables['params']))
    {'classifier': {'bias': (3,), 'kernel': (8, 3)}, 'hash': {'bias': (4,), 'kernel': (8, 4)}}

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, "Network architecture" and eq. 16.
  """

  bits: int
  num_classes: int
  norm: str = 'none'
  activation: str = 'none'
  classifier_reads: str = 'features'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    check_hash_norm(self.norm)
    check_head('the parallel head', self.activation, self.classifier_reads)
    u = nn.Dense(self.bits, dtype=self.dtype, name='hash')(features)
    if self.norm == 'batchnorm':
      u = conv.batch_norm(train, self.dtype)(name='hash_bn')(u)
    if self.activation == 'shrink_sigmoid':
      u = shrink_sigmoid(u)
    logits = classify(
      features, u, self.classifier_reads, self.num_classes, dtype=self.dtype
    )
    return {'hash': u, 'logits': logits}
