"""DAH's separable-convolution ResNet30 with CBAM attention (DAH Sec. III.A, Table 1).

A ResNet50-style bottleneck network for 32x32 inputs in which every block convolution
is depthwise-separable (depthwise k x k, then pointwise 1x1, as Keras `SeparableConv2D`).
Three stages of one conv block (stride 2) and two identity blocks; a CBAM module before
each stage. `attention='none'` gives the paper's NoneA-DAH ablation.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dahjax.models import attention as attention_lib
from dahjax.models import conv
from dahjax.models import heads

_STAGES = ((64, 64, 256), (128, 128, 512), (256, 256, 1024))
_ATTENTIONS = ('cbam', 'none')


class SeparableConv(nn.Module):
  """Depthwise k x k convolution followed by a pointwise 1x1 convolution, no bias.

  The layout of Keras `SeparableConv2D` (Chollet, "Xception", CVPR 2017), which DAH
  uses in place of every block convolution.

  Attributes:
    features: output channels F.
    kernel_size: size k of the depthwise kernel.
    strides: stride of the depthwise convolution.
    conv_impl: 'auto', 'xla' or 'slices' (see `conv`).
    dtype: computation dtype (parameters stay float32).

  Returns from `__call__(x)` (x [B, H, W, C]) the output [B, H / strides, W / strides, F].

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import resnet30
    >>> x = jax.ShapeDtypeStruct((2, 8, 8, 32), jnp.float32)
    >>> module = resnet30.SeparableConv(64, 3, strides=2)
    >>> variables = jax.eval_shape(module.init, jax.random.key(0), x)
    >>> print(jax.tree.map(lambda p: p.shape, variables['params']))
    {'depthwise': {'kernel': (3, 3, 1, 32)}, 'pointwise': {'kernel': (1, 1, 32, 64)}}
    >>> print(jax.eval_shape(module.apply, variables, x).shape)
    (2, 4, 4, 64)
  """

  features: int
  kernel_size: int
  strides: int = 1
  conv_impl: str = 'auto'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = conv.DepthwiseConv(
      self.kernel_size, self.strides, self.conv_impl, self.dtype, name='depthwise'
    )(x)
    # No bias: every separable convolution here is followed by BatchNorm.
    return conv.PointwiseConv(self.features, self.conv_impl, self.dtype, name='pointwise')(
      x
    )


class BottleneckBlock(nn.Module):
  """ResNet50 bottleneck (1x1, 3x3, 1x1) with separable convolutions.

  Main path: sepconv, BN, ReLU, sepconv, BN, ReLU, sepconv, BN; then the shortcut is
  added and a ReLU applied. A conv block (`strides` > 1 or a change of width) projects
  its shortcut with a 1x1 separable convolution of the same stride plus BatchNorm; an
  identity block adds x. DAH's Table 1 lists the layers of both blocks, the conv
  block's separable-convolution + BN shortcut included, but not their kernel sizes or
  where the stride sits; they follow ResNet50: kernels 1, 3, 1 on the main path, a 1x1
  shortcut, and the stride on the first convolution and on the shortcut.

  Attributes:
    filters: widths (f1, f2, f3) of the three convolutions.
    strides: stride of the block (2 for DAH's conv blocks, 1 for identity blocks).
    conv_impl: 'auto', 'xla' or 'slices' (see `conv`).
    dtype: computation dtype (parameters stay float32).

  Returns from `__call__(x, train)` (x [B, H, W, C]) the output
  [B, H / strides, W / strides, f3].

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import resnet30
    >>> x = jax.ShapeDtypeStruct((2, 8, 8, 32), jnp.float32)
    >>> block = resnet30.BottleneckBlock((16, 16, 64), strides=2)
    >>> variables = jax.eval_shape(lambda x: block.init(jax.random.key(0), x, False), x)
    >>> print(jax.eval_shape(lambda v, x: block.apply(v, x, False), variables, x).shape)
    (2, 4, 4, 64)

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Table 1.
  """

  filters: tuple[int, int, int]
  strides: int = 1
  conv_impl: str = 'auto'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    f1, f2, f3 = self.filters
    norm = conv.batch_norm(train, self.dtype)
    sep = functools.partial(SeparableConv, conv_impl=self.conv_impl, dtype=self.dtype)
    y = nn.relu(norm(name='bn1')(sep(f1, 1, self.strides, name='conv1')(x)))
    y = nn.relu(norm(name='bn2')(sep(f2, 3, name='conv2')(y)))
    y = norm(name='bn3')(sep(f3, 1, name='conv3')(y))
    if self.strides != 1 or x.shape[-1] != f3:
      x = norm(name='shortcut_bn')(sep(f3, 1, self.strides, name='shortcut')(x))
    return nn.relu(x + y)


class ResNet30(nn.Module):
  """The DAH network: backbone, shrink-sigmoid hash layer and classifier after it.

  Input BatchNorm, a 3x3 stem with a 3x3/1 max pool, then three stages (a conv block
  of stride 2 and two identity blocks, widths 256, 512, 1024) each preceded by a CBAM
  module, global average pooling and `heads.ShrinkSigmoidHashHead`, as in the paper's
  Table 1 for 32x32x3 inputs. The paper reports 87.48% fewer parameters than
  ResNet50's 25.56M, about 3.2M.

  Attributes:
    bits: code length k.
    num_classes: number of classes C of the classifier on the hash layer.
    attention: 'cbam' (DAH) or 'none' (NoneA-DAH, the paper's ablation).
    conv_impl: convolutions and pooling as 'auto', 'xla' or 'slices' (see `conv`).
    dtype: computation dtype (parameters stay float32).
    hash_layer: 'shrink_sigmoid' (the paper's eq. 1) or 'linear' (an unconstrained
      layer of the same width, codes thresholded at 0; a diagnostic, not DAH).
    classifier_input: 'codes' (the paper's: the classifier reads the codes),
      'centered' (it reads 4 (h - 1/2); not in the paper) or 'sign_codes' (a classifier
      without bias on the +-1 codes, straight-through: with `hash_layer='linear'`
      GreedyHash's head); see `heads.ShrinkSigmoidHashHead`.

  Returns from `__call__(images, train=False)` (images [B, H, W, 3]) a dict of float32
  arrays: `hash` [B, bits] in (1/4, 3/4) and `logits` [B, C].

  Examples:
    >>> import math
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import resnet30
    >>> model = resnet30.ResNet30(bits=48, num_classes=10)
    >>> images = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), images)
    >>> out = jax.eval_shape(model.apply, variables, images)
    >>> print({name: value.shape for name, value in out.items()})
    {'hash': (2, 48), 'logits': (2, 10)}
    >>> print(sum(math.prod(p.shape) for p in jax.tree.leaves(variables['params'])))
    2950653

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. III.A, Table 1 and eqs. 1, 5.
  """

  bits: int = 48
  num_classes: int = 10
  attention: str = 'cbam'
  conv_impl: str = 'auto'
  dtype: Any = jnp.float32
  hash_layer: str = 'shrink_sigmoid'
  classifier_input: str = 'codes'

  def binary_codes(self, h: jax.Array) -> jax.Array:
    """0/1 uint8 codes [B, bits] of the hash layer's output `h` [B, bits] (DAH eq. 5)."""
    if self.hash_layer == 'linear':
      return (h > 0).astype(jnp.uint8)
    return heads.shrink_sigmoid_codes(h)

  def __post_init__(self):
    # Checked at construction, so a bad config fails before anything compiles.
    if self.attention not in _ATTENTIONS:
      raise ValueError(
        f'Unknown attention {self.attention!r} for ResNet30; '
        f'valid: {", ".join(_ATTENTIONS)}.'
      )
    if self.hash_layer not in heads.HASH_LAYERS:
      raise ValueError(
        f'Unknown model.hash_layer {self.hash_layer!r} for ResNet30; '
        f'valid: {", ".join(heads.HASH_LAYERS)}.'
      )
    if self.classifier_input not in heads.CLASSIFIER_INPUTS:
      raise ValueError(
        f'Unknown model.classifier_input {self.classifier_input!r}; '
        f'valid: {", ".join(heads.CLASSIFIER_INPUTS)}.'
      )
    conv.resolve_impl(self.conv_impl)
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    norm = conv.batch_norm(train, self.dtype)
    x = images.astype(self.dtype)
    # The network normalises its raw input itself (Table 1: BN on the image).
    x = norm(name='input_bn')(x)
    x = conv.Conv(
      64,
      3,
      padding=((1, 1), (1, 1)),
      impl=self.conv_impl,
      dtype=self.dtype,
      name='stem_conv',
    )(x)
    x = nn.relu(norm(name='stem_bn')(x))
    x = conv.max_pool(x, 3, 1, ((1, 1), (1, 1)), self.conv_impl)
    for i, filters in enumerate(_STAGES):
      if self.attention == 'cbam':
        x = attention_lib.CBAM(
          dtype=self.dtype, conv_impl=self.conv_impl, name=f'cbam{i + 1}'
        )(x)
      for j, strides in enumerate((2, 1, 1)):
        x = BottleneckBlock(
          filters, strides, self.conv_impl, self.dtype, name=f'stage{i + 1}_block{j + 1}'
        )(x, train)
    features = heads.pool_features(x)
    out = heads.ShrinkSigmoidHashHead(
      self.bits,
      self.num_classes,
      dtype=jnp.float32,
      activation=self.hash_layer,
      classifier_input=self.classifier_input,
      name='head',
    )(features)
    return jax.tree.map(lambda a: a.astype(jnp.float32), out)
