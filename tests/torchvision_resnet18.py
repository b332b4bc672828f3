"""torchvision's ResNet18 state-dict layout and deterministic weights for it, in NumPy.

tests/fixtures/make_resnet18_fixture.py checks this layout against torchvision's own
`resnet18()`, loads these weights into it and saves its features; pretrained_test.py
rebuilds the same weights here, without torch, and compares the converted Flax model
with those features. The layout is written out independently of
`dahjax.models.pretrained` so that the test does not check that module against itself.
"""

import numpy as np

SEED = 0
IMAGE_SHAPE = (2, 64, 64, 3)  # NHWC, uint8.
_WIDTHS = (64, 128, 256, 512)


def state_dict_layout() -> list[tuple[str, tuple[int, ...]]]:
  """(name, shape) of each tensor of torchvision's `resnet18().state_dict()`, in order."""
  layout = []

  def bn(prefix, ch):
    layout.extend(
      [
        (f'{prefix}.weight', (ch,)),
        (f'{prefix}.bias', (ch,)),
        (f'{prefix}.running_mean', (ch,)),
        (f'{prefix}.running_var', (ch,)),
        (f'{prefix}.num_batches_tracked', ()),
      ]
    )

  layout.append(('conv1.weight', (64, 3, 7, 7)))
  bn('bn1', 64)
  in_ch = 64
  for i, width in enumerate(_WIDTHS):
    for j in range(2):
      block = f'layer{i + 1}.{j}'
      layout.append((f'{block}.conv1.weight', (width, in_ch, 3, 3)))
      bn(f'{block}.bn1', width)
      layout.append((f'{block}.conv2.weight', (width, width, 3, 3)))
      bn(f'{block}.bn2', width)
      if in_ch != width:
        layout.append((f'{block}.downsample.0.weight', (width, in_ch, 1, 1)))
        bn(f'{block}.downsample.1', width)
      in_ch = width
  layout += [('fc.weight', (1000, 512)), ('fc.bias', (1000,))]
  return layout


def _tensor(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
  """One tensor, scaled so that activations stay O(1) through the eval-mode network."""
  kind = name.rsplit('.', 1)[1]
  if kind == 'num_batches_tracked':
    return np.asarray(rng.integers(1, 1000), np.int64)
  if kind == 'running_var':
    # Positive and away from 1, so that a swapped mean/var or a missing var shows.
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)
  if kind == 'running_mean' or kind == 'bias':
    return rng.normal(0.0, 0.2, shape).astype(np.float32)
  if len(shape) == 1:  # BatchNorm weight (gamma).
    return rng.uniform(0.5, 1.0, shape).astype(np.float32)
  # Convolution and fc kernels: He-normal over the fan in, as for ReLU networks.
  fan_in = int(np.prod(shape[1:]))
  return (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def random_state_dict(seed: int = SEED) -> dict[str, np.ndarray]:
  """torchvision's ResNet18 state dict, every tensor from its own seeded generator."""
  return {
    name: _tensor(np.random.default_rng([seed, index]), name, shape)
    for index, (name, shape) in enumerate(state_dict_layout())
  }


def images(seed: int = SEED) -> np.ndarray:
  """The fixture's input: uint8 NHWC noise images."""
  return np.random.default_rng([seed, 1 << 20]).integers(0, 256, IMAGE_SHAPE, np.uint8)
