"""DPFAH's network: ResNet18 with parameter-free attention and two heads (DPFAH Fig. 1).

The backbone is torchvision's ResNet18 (7x7/2 conv, BN, ReLU, 3x3/2 max pool, four stages
of two basic blocks, widths 64-128-256-512, global average pool), with its module names,
so that torchvision's ImageNet weights map onto it one to one. `stem='cifar'` replaces the
stem with a 3x3/1 conv and no max pool for 32x32 inputs.

PFA placement (`attention`): 'stem' adds X + PFA(X) after the stem, the one placement
the paper describes (its Fig. 1); 'every_block' applies PFA to each basic block's
residual branch before the addition (SimAM's own placement); 'none' leaves it out (the
paper's ablation DFAH-1, Table 5).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dahjax.models import attention as attention_lib
from dahjax.models import conv
from dahjax.models import heads

STEMS = ('imagenet', 'cifar')
ATTENTIONS = ('stem', 'every_block', 'none')
_WIDTHS = (64, 128, 256, 512)

# torchvision's normalisation; the model takes images in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision initialises convolutions with kaiming_normal_(mode='fan_out').
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


class BasicBlock(nn.Module):
  """ResNet18's basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN (+PFA), add, ReLU.

  The input is added as it is, or through a 1x1 convolution and BatchNorm (torchvision's
  `downsample`) where the stride or the width changes.

  Attributes:
    features: output channels F.
    strides: stride of the first convolution and of the projection.
    pfa: apply PFA to the residual branch before the addition.
    pfa_lambda: PFA's lambda.
    conv_impl: 'auto', 'xla' or 'slices' (see `conv`).
    dtype: computation dtype (parameters stay float32).

  Returns from `__call__(x, train)` (x [B, H, W, C]) the output
  [B, H / strides, W / strides, F].

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import resnet18
    >>> x = jax.ShapeDtypeStruct((2, 8, 8, 32), jnp.float32)
    >>> block = resnet18.BasicBlock(64, strides=2)
    >>> variables = jax.eval_shape(lambda x: block.init(jax.random.key(0), x, False), x)
    >>> print(sorted(variables['params']))
    ['bn1', 'bn2', 'conv1', 'conv2', 'downsample_bn', 'downsample_conv']
    >>> print(jax.eval_shape(lambda v, x: block.apply(v, x, False), variables, x).shape)
    (2, 4, 4, 64)
  """

  features: int
  strides: int = 1
  pfa: bool = False
  pfa_lambda: float = 1e-4
  conv_impl: str = 'auto'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = conv.batch_norm(train, self.dtype)
    conv3 = functools.partial(
      conv.Conv,
      self.features,
      3,
      padding=((1, 1), (1, 1)),
      impl=self.conv_impl,
      dtype=self.dtype,
      kernel_init=_conv_init,
    )
    y = nn.relu(norm(name='bn1')(conv3(strides=self.strides, name='conv1')(x)))
    y = norm(name='bn2')(conv3(name='conv2')(y))
    if self.pfa:
      y = attention_lib.pfa(y, self.pfa_lambda)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = conv.Conv(
        self.features,
        1,
        self.strides,
        padding='VALID',
        impl=self.conv_impl,
        dtype=self.dtype,
        kernel_init=_conv_init,
        name='downsample_conv',
      )(x)
      x = norm(name='downsample_bn')(x)
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """DPFAH: ResNet18 + PFA, a hash layer u and a parallel classifier on the features.

  The model takes images in [0, 1] and normalises them with ImageNet's mean and
  standard deviation itself. The paper's Fig. 1 shows one PFA module after the stem
  (conv1 and max pool) whose output is added to the feature map, X + PFA(X), before the
  four stages; that is `attention='stem'`. Its Algorithm 1 starts from ImageNet
  weights, which `pretrained.load_pretrained` puts into these variables.

  Attributes:
    bits: code length l.
    num_classes: classes C of the classification branch.
    stem: 'imagenet' (7x7/2 conv + max pool, 224 px) or 'cifar' (3x3/1 conv, 32 px).
    attention: PFA placement, 'stem', 'every_block' or 'none'.
    pfa_lambda: PFA's lambda.
    hash_norm: 'none' (DPFAH) or 'batchnorm' on the hash layer (not in the paper;
      `heads.ParallelHashHead`).
    hash_activation: 'none' (DPFAH: the raw u) or 'shrink_sigmoid' (DAH's head, for
      comparing methods on this backbone; its codes are h > 1/2).
    classifier_reads: 'features' (DPFAH), 'codes' (DAH) or 'sign_codes' (GreedyHash).
    conv_impl: 'auto', 'xla' or 'slices' (see `conv`).
    dtype: computation dtype (parameters stay float32).

  Returns from `__call__(images, train=False)` (images [B, H, W, 3]) a dict of float32
  arrays: `hash` (u) [B, bits], `logits` [B, C] and `features` (the pooled backbone
  output) [B, 512].

  Examples:
    >>> import math
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from dahjax.models import resnet18
    >>> model = resnet18.ResNet18(bits=16, num_classes=10, stem='cifar')
    >>> images = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), images)
    >>> out = jax.eval_shape(model.apply, variables, images)
    >>> print({name: value.shape for name, value in out.items()})
    {'features': (2, 512), 'hash': (2, 16), 'logits': (2, 10)}
    >>> print(sum(math.prod(p.shape) for p in jax.tree.leaves(variables['params'])))
    11182170

  References:
    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, Fig. 1, Table 1, eq. 16 and Algorithm 1.

    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
  """

  bits: int = 48
  num_classes: int = 100
  stem: str = 'imagenet'
  attention: str = 'stem'
  pfa_lambda: float = 1e-4
  hash_norm: str = 'none'
  hash_activation: str = 'none'
  classifier_reads: str = 'features'
  conv_impl: str = 'auto'
  dtype: Any = jnp.float32

  def binary_codes(self, h: jax.Array) -> jax.Array:
    """0/1 uint8 codes of the head's output: sign(u) (DPFAH's eq. 17), or h > 1/2 after
    the shrink sigmoid."""
    return heads.head_codes(self.hash_activation, h)

  def __post_init__(self):
    # Checked at construction, so a bad config fails before anything compiles.
    if self.stem not in STEMS:
      raise ValueError(
        f'Unknown stem {self.stem!r} for ResNet18; valid: {", ".join(STEMS)}.'
      )
    if self.attention not in ATTENTIONS:
      raise ValueError(
        f'Unknown attention {self.attention!r} for ResNet18; valid: '
        f'{", ".join(ATTENTIONS)}.'
      )
    heads.check_hash_norm(self.hash_norm)
    heads.check_head('dpfah_resnet18', self.hash_activation, self.classifier_reads)
    conv.resolve_impl(self.conv_impl)
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    x = ((images.astype(jnp.float32) - mean) / std).astype(self.dtype)
    k, s, p = (7, 2, 3) if self.stem == 'imagenet' else (3, 1, 1)
    x = conv.Conv(
      64,
      k,
      s,
      padding=((p, p), (p, p)),
      impl=self.conv_impl,
      dtype=self.dtype,
      kernel_init=_conv_init,
      name='conv1',
    )(x)
    x = nn.relu(conv.batch_norm(train, self.dtype)(name='bn1')(x))
    if self.stem == 'imagenet':
      x = conv.max_pool(x, 3, 2, ((1, 1), (1, 1)), self.conv_impl)
    if self.attention == 'stem':
      x = x + attention_lib.pfa(x, self.pfa_lambda)
    for i, width in enumerate(_WIDTHS):
      for j in range(2):
        x = BasicBlock(
          width,
          2 if i > 0 and j == 0 else 1,
          pfa=self.attention == 'every_block',
          pfa_lambda=self.pfa_lambda,
          conv_impl=self.conv_impl,
          dtype=self.dtype,
          name=f'layer{i + 1}_{j}',
        )(x, train)
    features = heads.pool_features(x)
    out = heads.ParallelHashHead(
      self.bits,
      self.num_classes,
      norm=self.hash_norm,
      activation=self.hash_activation,
      classifier_reads=self.classifier_reads,
      dtype=jnp.float32,
      name='head',
    )(features, train)
    out['features'] = features
    return jax.tree.map(lambda a: a.astype(jnp.float32), out)
