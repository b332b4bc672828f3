"""DSH's small CNN for 32 x 32 images (Liu et al., "Deep Supervised Hashing for Fast Image
Retrieval", CVPR 2016, Sec. 3.3 and Fig. 1), as the authors' Caffe release defines it.

Three 5x5 convolutions (32, 32, 64 filters, stride 1, pad 2), each block followed by 3x3
pooling with stride 2 (max, average, average), a 500-unit ReLU layer and the k-bit linear
output. The paper gives the sizes and the pooling kinds; the release
(lhmRyan/deep-supervised-hashing-DSH, CIFAR-10/train_test.prototxt) settles the rest,
followed here:

- blocks 1 and 2 pool before their ReLU and end with a within-channel local response
  normalisation (3x3, alpha 5e-5, beta 0.75); block 3 applies its ReLU before pooling;
- pooling rounds the output size up (Caffe's ceil mode: 32 -> 16 -> 8 -> 4, so the
  500-unit layer reads 4 x 4 x 64 values); the last window of a row overhangs the edge,
  where max pooling ignores the missing cells and average pooling divides by the cells
  present;
- weights are drawn from Caffe's "xavier" filler, uniform on +-sqrt(3 / fan_in); biases
  start at 0;
- the input is the image in [0, 255] less the training set's mean, without scaling.

The release subtracts a per-pixel mean image; here the per-channel mean of CIFAR-10's
50,000 training images is subtracted (a constant, so the model needs no data to build).
The paper's network has no classifier; `logits` is a linear layer on the 500 features
beside the hash layer, for the methods that train one (DSH's loss ignores it), or, with
`classifier_reads='sign_codes'`, a linear layer without bias on sgn(u) with the
straight-through gradient (GreedyHash's classifier, Sec. 3 of its paper). With
`hash_activation='shrink_sigmoid'` and `classifier_reads='codes'` the network ends in
DAH's head (its hash layer squeezed into (1/4, 3/4), the classifier reading it), so
DAH's loss can run on this backbone too.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dahjax.models import conv
from dahjax.models import heads

# The mean RGB pixel of CIFAR-10's 50,000 training images on the [0, 255] scale (the
# channel means of the release's mean image, CIFAR-10/mean.binaryproto).
CIFAR10_MEAN_RGB = (125.31, 122.95, 113.87)


# Caffe's "xavier" filler: uniform(-sqrt(3 / fan_in), +sqrt(3 / fan_in)).
xavier_uniform = nn.initializers.variance_scaling(1.0, 'fan_in', 'uniform')


def ceil_pool(x: jax.Array, kind: str, impl: str = 'auto') -> jax.Array:
  """3x3 pooling with stride 2 that rounds the output size up, as Caffe's pooling does.

  The input is padded by one row and column at the bottom and right: padded cells never
  win a max and are not counted by an average.

  Args:
    x: NHWC features with even height and width.
    kind: 'max' or 'avg'.
    impl: max pooling's implementation (`conv.max_pool`; 'slices' is the CPU's fast
      path, whose gradient is several times faster than XLA's there).

  Returns:
    NHWC features of half the height and width.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.models import dsh_cnn
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> print(dsh_cnn.ceil_pool(x, 'avg')[0, :, :, 0])
    [[ 5.   6.5]
     [11.  12.5]]
  """
  pads = ((0, 1), (0, 1))
  if kind == 'max':
    return conv.max_pool(x, 3, 2, pads, impl=impl)
  return nn.avg_pool(x, (3, 3), (2, 2), pads, count_include_pad=False)


def within_channel_lrn(
  x: jax.Array, *, alpha: float = 5e-5, beta: float = 0.75
) -> jax.Array:
  """Caffe's WITHIN_CHANNEL local response normalisation over 3x3 neighbourhoods.

  y = x (1 + alpha / 9 * sum of x^2 over the zero-padded 3x3 neighbourhood)^(-beta), each
  channel on its own (Caffe averages the squares over the 9 cells, padding included).

  Args:
    x: NHWC features.
    alpha: scale of the squares' average.
    beta: the exponent.

  Returns:
    Normalised features, same shape.

  Examples:
    >>> import jax.numpy as jnp
    >>> from dahjax.models import dsh_cnn
    >>> x = jnp.full((1, 1, 1, 1), 300.0)  # 300 (1 + 5e-5 * 300^2 / 9)^(-3/4)
    >>> print(round(float(dsh_cnn.within_channel_lrn(x)[0, 0, 0, 0]), 3))
    221.336
  """
  mean_sq = nn.avg_pool(jnp.square(x), (3, 3), (1, 1), ((1, 1), (1, 1)))
  # (1 + alpha m)^(-beta) as exp(-beta log1p(alpha m)): its gradient reuses the exp,
  # where a power's needs a second power; a train step about 8% faster on the CPU
  # (benchmarks/lrn_speed.py).
  return x * jnp.exp(-beta * jnp.log1p(alpha * mean_sq))


class DSHNet(nn.Module):
  """DSH's CNN: images [B, 32, 32, 3] in [0, 1] -> {'hash': u [B, bits], 'logits'}.

  Attributes:
    bits: code length k.
    num_classes: number of classes C of the (optional) linear classifier.
    conv_impl: max pooling's implementation, 'auto', 'xla' or 'slices' (`conv.IMPLS`).
    hash_activation: 'none' (DSH: the raw outputs u) or 'shrink_sigmoid' (DAH's eq. 1).
    classifier_reads: 'features' (the 500 features), 'codes' (the hash layer's output:
      DAH) or 'sign_codes' (sgn(u), no bias, straight-through: GreedyHash).
    dtype: computation dtype (parameters stay float32).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import dsh_cnn
    >>> net = dsh_cnn.DSHNet(bits=12, num_classes=10)
    >>> variables = net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    >>> print(jax.tree.map(lambda p: p.shape, variables['params'])['fc500'])
    {'bias': (500,), 'kernel': (1024, 500)}
    >>> outputs = net.apply(variables, jnp.zeros((2, 32, 32, 3)))
    >>> print(outputs['hash'].shape, outputs['logits'].shape)
    (2, 12) (2, 10)
  """

  bits: int = 12
  num_classes: int = 10
  conv_impl: str = 'auto'
  hash_activation: str = 'none'
  classifier_reads: str = 'features'
  dtype: jnp.dtype = jnp.float32

  def binary_codes(self, h: jax.Array) -> jax.Array:
    """0/1 uint8 codes of the hash layer's output: sgn(u), or h > 1/2 after the shrink
    sigmoid."""
    return heads.head_codes(self.hash_activation, h)

  def __post_init__(self):
    heads.check_head('dsh_cnn', self.hash_activation, self.classifier_reads)
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    del train  # No batch statistics and no dropout.
    x = x.astype(jnp.float32) * 255.0 - jnp.asarray(CIFAR10_MEAN_RGB, jnp.float32)
    x = x.astype(self.dtype)

    def conv5x5(features, name):
      return nn.Conv(
        features, (5, 5), padding=2, kernel_init=xavier_uniform, dtype=self.dtype, name=name
      )

    x = within_channel_lrn(
      nn.relu(ceil_pool(conv5x5(32, 'conv1')(x), 'max', self.conv_impl))
    )
    x = within_channel_lrn(nn.relu(ceil_pool(conv5x5(32, 'conv2')(x), 'avg')))
    x = ceil_pool(nn.relu(conv5x5(64, 'conv3')(x)), 'avg')
    x = x.reshape(x.shape[0], -1)
    dense = lambda n, name: nn.Dense(
      n, kernel_init=xavier_uniform, dtype=self.dtype, name=name
    )
    features = nn.relu(dense(500, 'fc500')(x))
    u = dense(self.bits, 'hash')(features)
    if self.hash_activation == 'shrink_sigmoid':
      u = heads.shrink_sigmoid(u)
    logits = heads.classify(
      features,
      u,
      self.classifier_reads,
      self.num_classes,
      kernel_init=xavier_uniform,
      dtype=self.dtype,
    )
    return {'hash': u.astype(jnp.float32), 'logits': logits.astype(jnp.float32)}
