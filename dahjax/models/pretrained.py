"""torchvision's ImageNet ResNet18 weights for DPFAH's backbone (DPFAH Algorithm 1).

DPFAH starts from an ImageNet-pretrained ResNet18 (the initialisation of its
Algorithm 1). `resnet18.ResNet18` keeps torchvision's module names, so every tensor of
torchvision's `resnet18().state_dict()` has exactly one place in the Flax variables
(the mapping: docs/design.md, section dahjax/models/pretrained.py).

`num_batches_tracked` and the 1000-class `fc` are not used: DPFAH's hash and class heads
(`head`) keep their fresh initialisation. With `stem='cifar'` the 3x3 conv1 cannot take
the 7x7 ImageNet kernel, so conv1 keeps its initialisation (a warning says so) and every
other tensor, bn1 included, is loaded.

Weight files hold torchvision's state dict as .npz, .safetensors (F32, F16 or BF16, read
here with NumPy) or .pth/.pt (read with `torch.load(weights_only=True)`, so only where
torch is installed; elsewhere convert the file once, see `load_torchvision_state_dict`).
"""

from collections.abc import Mapping
import json
import os
from typing import Any
import zipfile

from absl import logging
import jax.numpy as jnp
import numpy as np

# The registry name of the only model these weights fit.
MODEL_NAME = 'dpfah_resnet18'
FORMATS = ('.npz', '.safetensors', '.pth', '.pt')
_WIDTHS = (64, 128, 256, 512)

# Run where torch is installed; the .npz it writes loads anywhere.
CONVERT_COMMAND = (
  'python -c "import sys, numpy, torch; sd = torch.load(sys.argv[1], '
  "map_location='cpu', weights_only=True); numpy.savez(sys.argv[2], "
  '**{k: v.float().numpy() for k, v in sd.items()})" resnet18.pth resnet18.npz'
)

# safetensors dtype -> NumPy dtype of the stored bytes (all little-endian).
_SAFETENSORS_DTYPES = {
  'F64': '<f8',
  'F32': '<f4',
  'F16': '<f2',
  'BF16': '<u2',
  'I64': '<i8',
  'I32': '<i4',
  'I16': '<i2',
  'I8': 'i1',
  'U8': 'u1',
  'BOOL': '?',
}

# torchvision BatchNorm tensor -> (Flax collection, Flax name).
_BN = (
  ('weight', 'params', 'scale'),
  ('bias', 'params', 'bias'),
  ('running_mean', 'batch_stats', 'mean'),
  ('running_var', 'batch_stats', 'var'),
)


def _layout() -> list[tuple[str, tuple[int, ...], str, tuple[str, ...]]]:
  """(torchvision name, torchvision shape, Flax collection, Flax path) of each tensor."""
  entries = []

  def conv(name, path, out_ch, in_ch, k):
    entries.append((f'{name}.weight', (out_ch, in_ch, k, k), 'params', path + ('kernel',)))

  def bn(name, path, ch):
    for tv, collection, flax_name in _BN:
      entries.append((f'{name}.{tv}', (ch,), collection, path + (flax_name,)))

  conv('conv1', ('conv1',), 64, 3, 7)
  bn('bn1', ('bn1',), 64)
  in_ch = 64
  for i, width in enumerate(_WIDTHS):
    for j in range(2):
      tv, block = f'layer{i + 1}.{j}', f'layer{i + 1}_{j}'
      conv(f'{tv}.conv1', (block, 'conv1'), width, in_ch, 3)
      bn(f'{tv}.bn1', (block, 'bn1'), width)
      conv(f'{tv}.conv2', (block, 'conv2'), width, width, 3)
      bn(f'{tv}.bn2', (block, 'bn2'), width)
      if in_ch != width:
        conv(f'{tv}.downsample.0', (block, 'downsample_conv'), width, in_ch, 1)
        bn(f'{tv}.downsample.1', (block, 'downsample_bn'), width)
      in_ch = width
  return entries


def _ignored(name: str) -> bool:
  return name.startswith('fc.') or name.endswith('.num_batches_tracked')


def check(model_name: str, path: str) -> None:
  """Raises if `path` cannot be loaded as pretrained weights of model `model_name`.

  Cheap (no file is read), so a bad config fails before anything compiles.
  """
  if model_name != MODEL_NAME:
    raise ValueError(
      f'model.pretrained={path!r}: pretrained weights exist only for '
      f"{MODEL_NAME} (torchvision's ResNet18), not {model_name}."
    )
  if not os.path.isfile(os.path.expanduser(path)):
    raise FileNotFoundError(
      f"model.pretrained {path!r} does not exist. Expected torchvision's ResNet18 "
      f'state dict as {", ".join(FORMATS)}.'
    )
  _format(path)


def _format(path: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  if ext not in FORMATS:
    raise ValueError(
      f'Cannot read weights {path!r}: unknown extension {ext!r}; '
      f'accepted formats: {", ".join(FORMATS)}.'
    )
  return ext


def load_torchvision_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a torchvision state dict from .npz, .safetensors or .pth/.pt.

  Floating-point tensors come back as float32 NumPy arrays, others as stored.

  Args:
    path: the weights file; its extension picks the format.

  Returns:
    {torchvision name: array}.

  Raises:
    FileNotFoundError: no such file.
    ValueError: unknown extension or a file that cannot be read in its format.
    ImportError: a .pth/.pt file where torch is not installed; the message holds a
      command that converts the file to .npz (`CONVERT_COMMAND`).
  """
  path = os.path.expanduser(path)
  ext = _format(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Weights file {path!r} does not exist.')
  if ext == '.npz':
    state_dict = _read_npz(path)
  elif ext == '.safetensors':
    state_dict = _read_safetensors(path)
  else:
    state_dict = _read_torch(path)
  return {
    k: v.astype(np.float32, copy=False) if np.issubdtype(v.dtype, np.floating) else v
    for k, v in state_dict.items()
  }


def _read_npz(path: str) -> dict[str, np.ndarray]:
  if not zipfile.is_zipfile(path):
    raise ValueError(f'Cannot read {path!r} as .npz: not a zip archive as np.savez writes.')
  try:
    with np.load(path, allow_pickle=False) as data:
      return {name: data[name] for name in data.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f'Cannot read {path!r} as .npz: {e}') from e


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  """Parses the format by hand: no dependency beyond NumPy.

  Layout: an 8-byte little-endian header length n, n bytes of JSON
  {name: {dtype, shape, data_offsets: [begin, end]}, '__metadata__': ...}, then the
  raw little-endian tensor bytes, offsets relative to the end of the header.
  """
  with open(path, 'rb') as f:
    data = f.read()

  def fail(why):
    return ValueError(f'Cannot read {path!r} as .safetensors: {why}.')

  if len(data) < 8:
    raise fail('shorter than its 8-byte header length')
  n = int.from_bytes(data[:8], 'little')
  if n > len(data) - 8:
    raise fail(f'header length {n} exceeds the file size {len(data)}')
  try:
    header = json.loads(data[8 : 8 + n])
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise fail(f'its header is not JSON ({e})') from e
  if not isinstance(header, dict):
    raise fail('its header is not a JSON object')
  state_dict = {}
  for name, info in header.items():
    if name == '__metadata__':
      continue
    try:
      dtype, shape, (begin, end) = info['dtype'], tuple(info['shape']), info['data_offsets']
    except (KeyError, TypeError, ValueError) as e:
      raise fail(f'tensor {name!r} has a malformed entry {info!r}') from e
    if dtype not in _SAFETENSORS_DTYPES:
      raise fail(
        f'tensor {name!r} has dtype {dtype}; supported: {", ".join(_SAFETENSORS_DTYPES)}'
      )
    stored = np.dtype(_SAFETENSORS_DTYPES[dtype])
    count = int(np.prod(shape))
    if not 0 <= begin <= end <= len(data) - 8 - n or end - begin != count * stored.itemsize:
      raise fail(
        f'tensor {name!r} ({dtype}, shape {shape}) has bytes [{begin}, {end}) '
        f'that do not fit it or the file'
      )
    array = np.frombuffer(data, stored, count, 8 + n + begin).reshape(shape)
    if dtype == 'BF16':
      # bfloat16 is the upper half of a float32.
      array = (array.astype(np.uint32) << 16).view(np.float32)
    state_dict[name] = array
  return state_dict


def _read_torch(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
      f'Reading {path!r} needs PyTorch, which is not installed (dahjax does not need '
      f'it). Convert the file to .npz or .safetensors on a machine with torch, e.g.\n'
      f'  {CONVERT_COMMAND}'
    ) from e
  try:
    state_dict = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    # torch.load reports a corrupt file as any of several exception types.
    raise ValueError(f'Cannot read {path!r} with torch.load: {e}') from e
  if not isinstance(state_dict, Mapping) or not all(
    isinstance(v, torch.Tensor) for v in state_dict.values()
  ):
    raise ValueError(f'{path!r} does not hold a state dict (names mapped to tensors).')
  return {
    k: (v.detach().float() if v.is_floating_point() else v.detach()).numpy()
    for k, v in state_dict.items()
  }


def _check_state_dict(
  state_dict: Mapping[str, Any],
  layout: list[tuple[str, tuple[int, ...], str, tuple[str, ...]]],
):
  """Raises ValueError on the first missing or misshapen tensor, then on extra ones."""
  for name, shape, _, _ in layout:
    if name not in state_dict:
      raise ValueError(
        f'The weights lack tensor {name!r} (ResNet18 needs shape {shape}); '
        "expected the state dict of torchvision's resnet18."
      )
    got = tuple(np.shape(state_dict[name]))
    if got != shape:
      raise ValueError(
        f'Tensor {name!r} has shape {got} in the weights but ResNet18 needs '
        f"{shape}; expected the state dict of torchvision's resnet18, not "
        'another network.'
      )
  expected = {name for name, _, _, _ in layout}
  extra = sorted(k for k in state_dict if k not in expected and not _ignored(k))
  if extra:
    raise ValueError(
      f"The weights hold {len(extra)} tensors that torchvision's resnet18 "
      f'does not have, e.g. {", ".join(extra[:5])}; a deeper ResNet?'
    )


def _copy(tree: Mapping[str, Any]) -> dict[str, Any]:
  return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()):
  for k, v in tree.items():
    if isinstance(v, Mapping):
      yield from _leaves(v, prefix + (k,))
    else:
      yield prefix + (k,)


def convert_resnet18(
  state_dict: Mapping[str, Any], variables: Mapping[str, Any]
) -> dict[str, Any]:
  """Puts torchvision's ResNet18 tensors into `resnet18.ResNet18` variables.

  Args:
    state_dict: torchvision's `resnet18().state_dict()` as arrays (e.g. from
      `load_torchvision_state_dict`); `fc.*` and `*.num_batches_tracked` are ignored.
    variables: {'params', 'batch_stats'} of a `ResNet18` (either stem), e.g. from
      `model.init`; not modified.

  Returns:
    A copy of `variables` with every backbone tensor from `state_dict` and `head` as it
    was. With the CIFAR stem conv1 also stays as it was.

  Raises:
    ValueError: a tensor of `state_dict` is missing, has the wrong shape or is not
      finite, `state_dict` holds tensors resnet18 does not, or `variables` are not
      those of a `ResNet18`.
  """
  layout = _layout()
  _check_state_dict(state_dict, layout)
  out = _copy(variables)
  loaded, kept = set(), set()
  for name, shape, collection, path in layout:
    node = out.get(collection, {})
    for key in path[:-1]:
      node = node.get(key, {})
    if path[-1] not in node:
      raise ValueError(
        f'The variables have no {collection}/{"/".join(path)} for {name!r}; '
        'expected the variables of dahjax.models.resnet18.ResNet18.'
      )
    value = np.asarray(state_dict[name], np.float32)
    if len(shape) == 4:
      value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO.
    old = node[path[-1]]
    if value.shape != old.shape:
      if name == 'conv1.weight' and old.shape[:2] == (3, 3):
        logging.warning(
          'ResNet18 with the CIFAR stem: its 3x3 conv1 keeps its '
          'initialisation; the 7x7 ImageNet conv1 does not fit it.'
        )
        kept.add((collection,) + path)
        continue
      raise ValueError(
        f'{collection}/{"/".join(path)} has shape {old.shape}, but '
        f'{name!r} converts to {value.shape}.'
      )
    if not np.all(np.isfinite(value)):
      raise ValueError(f'Tensor {name!r} has non-finite values.')
    node[path[-1]] = jnp.asarray(value, old.dtype)
    loaded.add((collection,) + path)
  # A module the layout does not know would otherwise keep its initialisation silently.
  done = loaded | kept
  missed = [p for p in _leaves(out) if p[1] != 'head' and p not in done]
  if missed:
    raise ValueError(
      f'No torchvision tensor for {"/".join(missed[0])} (and '
      f'{len(missed) - 1} more); expected the variables of '
      'dahjax.models.resnet18.ResNet18.'
    )
  logging.info(
    "Loaded %d of torchvision's ResNet18 tensors; the heads keep their initialisation.",
    len(loaded),
  )
  return out


def load_pretrained(path: str, variables: Mapping[str, Any]) -> dict[str, Any]:
  """`variables` of a `ResNet18` with the backbone read from torchvision weights `path`."""
  return convert_resnet18(load_torchvision_state_dict(path), variables)
