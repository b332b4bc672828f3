"""Tests of loading torchvision's ResNet18 weights into DPFAH's backbone.

The numerical check runs the converted Flax model on the inputs of
fixtures/resnet18_features.npz and compares its features with torchvision's own
(written by fixtures/make_resnet18_fixture.py), with weights rebuilt here by NumPy.
"""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax import state as state_lib
from dahjax import validation
from dahjax.models import pretrained
from dahjax.models import resnet18
from tests import torchvision_resnet18

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'resnet18_features.npz')

_SAFETENSORS_DTYPES = {
  np.dtype(np.float32): 'F32',
  np.dtype(np.float16): 'F16',
  np.dtype(np.int64): 'I64',
}


def write_safetensors(path, tensors, bf16=()):
  """Writes `tensors` in the safetensors format; names in `bf16` are stored as BF16."""
  header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
  for name, array in tensors.items():
    array = np.ascontiguousarray(array)
    if name in bf16:
      # Truncating float32 to its upper 16 bits gives bfloat16.
      data, dtype = (array.astype('<f4').view('<u4') >> 16).astype('<u2').tobytes(), 'BF16'
    else:
      data, dtype = (
        array.astype(array.dtype.newbyteorder('<')).tobytes(),
        (_SAFETENSORS_DTYPES[array.dtype]),
      )
    header[name] = {
      'dtype': dtype,
      'shape': list(array.shape),
      'data_offsets': [offset, offset + len(data)],
    }
    chunks.append(data)
    offset += len(data)
  encoded = json.dumps(header).encode()
  encoded += b' ' * (-len(encoded) % 8)  # The format pads the header to 8 bytes.
  with open(path, 'wb') as f:
    f.write(len(encoded).to_bytes(8, 'little') + encoded + b''.join(chunks))


def make_model(stem='imagenet', conv_impl='auto'):
  return resnet18.ResNet18(
    bits=16, num_classes=5, stem=stem, attention='none', conv_impl=conv_impl
  )


@pytest.fixture(scope='module')
def state_dict():
  return torchvision_resnet18.random_state_dict()


def fast_key(seed):
  # XLA compiles ResNet18's initialisation about twice as fast with 'rbg' keys as
  # with the default threefry.
  return jax.random.key(seed, impl='rbg')


@pytest.fixture(scope='module')
def init_variables():
  """Freshly initialised variables of the ImageNet-stem model."""
  return jax.jit(make_model().init)(fast_key(1), jnp.zeros((1, 64, 64, 3)))


def get(variables, collection, path):
  node = variables[collection]
  for key in path.split('/'):
    node = node[key]
  return np.asarray(node)


def test_features_match_torchvision(state_dict, init_variables, tmp_path):
  """torchvision's resnet18 and the converted Flax model give the same features."""
  npz, safetensors = tmp_path / 'w.npz', tmp_path / 'w.safetensors'
  np.savez(npz, **state_dict)
  write_safetensors(safetensors, state_dict)
  from_npz = pretrained.load_torchvision_state_dict(str(npz))
  from_safetensors = pretrained.load_torchvision_state_dict(str(safetensors))
  assert list(from_npz) == list(from_safetensors) == list(state_dict)
  for name, value in state_dict.items():
    np.testing.assert_array_equal(from_npz[name], value)
    np.testing.assert_array_equal(from_safetensors[name], value)

  fixture = np.load(FIXTURE)
  np.testing.assert_array_equal(fixture['images'], torchvision_resnet18.images())
  variables = pretrained.load_pretrained(str(safetensors), init_variables)
  images = fixture['images'].astype(np.float32) / 255
  expected = fixture['features']
  # Both convolution paths: XLA's, and the CPU's shifted slices and matrix products.
  for impl in ('xla', 'slices'):
    model = make_model(conv_impl=impl)
    features = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)[
      'features'
    ]
    print(
      f'{impl}: max |Flax - torchvision| = {np.max(np.abs(features - expected)):.2e}'
      f', max |features| = {np.max(np.abs(expected)):.2f}'
    )
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)


def test_layout_heads_and_copy(state_dict, init_variables):
  variables = pretrained.convert_resnet18(state_dict, init_variables)
  np.testing.assert_array_equal(
    get(variables, 'params', 'layer2_0/downsample_conv/kernel'),
    state_dict['layer2.0.downsample.0.weight'].transpose(2, 3, 1, 0),
  )
  np.testing.assert_array_equal(
    get(variables, 'params', 'layer4_1/bn2/scale'), state_dict['layer4.1.bn2.weight']
  )
  np.testing.assert_array_equal(
    get(variables, 'batch_stats', 'layer3_0/downsample_bn/var'),
    state_dict['layer3.0.downsample.1.running_var'],
  )
  for path in ('head/hash/kernel', 'head/hash/bias', 'head/classifier/kernel'):
    np.testing.assert_array_equal(
      get(variables, 'params', path), get(init_variables, 'params', path)
    )
  # The input is not modified.
  assert not np.array_equal(
    get(init_variables, 'params', 'conv1/kernel'), get(variables, 'params', 'conv1/kernel')
  )


def test_cifar_stem_keeps_its_conv1(state_dict, init_variables):
  # The CIFAR stem's variables differ from the ImageNet stem's in conv1 only: swap it
  # rather than compile another initialisation.
  shapes = jax.eval_shape(
    make_model('cifar').init, jax.random.key(0), jnp.zeros((1, 32, 32, 3))
  )
  init = jax.tree.map(lambda x: x, init_variables)
  init['params']['conv1']['kernel'] = jax.random.normal(jax.random.key(2), (3, 3, 3, 64))
  assert jax.tree.map(jnp.shape, init) == jax.tree.map(jnp.shape, shapes)
  variables = pretrained.convert_resnet18(state_dict, init)
  np.testing.assert_array_equal(
    get(variables, 'params', 'conv1/kernel'), get(init, 'params', 'conv1/kernel')
  )
  np.testing.assert_array_equal(
    get(variables, 'params', 'bn1/bias'), state_dict['bn1.bias']
  )
  np.testing.assert_array_equal(
    get(variables, 'batch_stats', 'bn1/mean'), state_dict['bn1.running_mean']
  )
  np.testing.assert_array_equal(
    get(variables, 'params', 'layer1_0/conv1/kernel'),
    state_dict['layer1.0.conv1.weight'].transpose(2, 3, 1, 0),
  )


@pytest.mark.parametrize(
  'change,match',
  [
    (
      lambda sd: sd.update({'layer3.1.conv2.weight': np.zeros((256, 256, 1, 1))}),
      r"'layer3.1.conv2.weight' has shape \(256, 256, 1, 1\).*needs \(256, 256, 3, 3\)",
    ),
    (
      lambda sd: sd.pop('layer2.0.downsample.1.running_var'),
      r"lack tensor 'layer2.0.downsample.1.running_var'.*shape \(128,\)",
    ),
    (
      lambda sd: sd.update({'layer1.2.conv1.weight': np.zeros((64, 64, 3, 3))}),
      r'1 tensors that .*resnet18 does not have, e.g. layer1.2.conv1.weight',
    ),
    (
      lambda sd: sd.update({'bn1.running_var': np.full(64, np.nan, np.float32)}),
      r"'bn1.running_var' has non-finite values",
    ),
  ],
)
def test_bad_state_dict_names_the_tensor(state_dict, init_variables, change, match):
  bad = dict(state_dict)
  change(bad)
  with pytest.raises(ValueError, match=match):
    pretrained.convert_resnet18(bad, init_variables)


def test_ignored_tensors_and_another_networks_variables(state_dict, init_variables):
  # fc and num_batches_tracked are neither needed nor in the way.
  kept = {
    k: v
    for k, v in state_dict.items()
    if not k.startswith('fc.') and not k.endswith('num_batches_tracked')
  }
  pretrained.convert_resnet18(kept, init_variables)
  with pytest.raises(ValueError, match='variables of dahjax.models.resnet18.ResNet18'):
    pretrained.convert_resnet18(state_dict, {'params': {}, 'batch_stats': {}})


def test_safetensors_half_precisions(tmp_path):
  rng = np.random.default_rng(0)
  f32 = rng.normal(size=(3, 4)).astype(np.float32)
  path = tmp_path / 'w.safetensors'
  write_safetensors(path, {'a': f32, 'b': f32.astype(np.float16), 'c': f32}, bf16={'c'})
  got = pretrained.load_torchvision_state_dict(str(path))
  assert all(v.dtype == np.float32 for v in got.values())
  np.testing.assert_array_equal(got['b'], f32.astype(np.float16).astype(np.float32))
  # bfloat16 keeps 8 bits of mantissa: truncation is within 2^-7 relative.
  np.testing.assert_allclose(got['c'], f32, rtol=2**-7)
  assert not np.array_equal(got['c'], f32)


# One float32 tensor of 4 values (16 bytes) and no data after the header.
_HEADER = b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'


@pytest.mark.parametrize(
  'name,content,match',
  [
    ('w.safetensors', b'\x10\x00', 'shorter than'),
    ('w.safetensors', b'\xff' * 16, 'header length'),
    ('w.safetensors', (4).to_bytes(8, 'little') + b'{"a"', 'not JSON'),
    ('w.safetensors', (len(_HEADER)).to_bytes(8, 'little') + _HEADER, 'do not fit'),
    ('w.npz', b'not a zip file', 'as .npz'),
    ('w.h5', b'', "unknown extension '.h5'"),
  ],
)
def test_unreadable_files_name_the_path(tmp_path, name, content, match):
  path = tmp_path / name
  path.write_bytes(content)
  with pytest.raises(ValueError, match=match) as e:
    pretrained.load_torchvision_state_dict(str(path))
  assert str(path) in str(e.value)


def test_pth_round_trip(state_dict, tmp_path):
  torch = pytest.importorskip('torch')
  path = tmp_path / 'w.pth'
  torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, path)
  got = pretrained.load_torchvision_state_dict(str(path))
  assert list(got) == list(state_dict)
  for name, value in state_dict.items():
    np.testing.assert_array_equal(got[name], value)
  (tmp_path / 'bad.pt').write_bytes(b'garbage')
  with pytest.raises(ValueError, match='bad.pt'):
    pretrained.load_torchvision_state_dict(str(tmp_path / 'bad.pt'))


def test_pth_without_torch_says_how_to_convert(tmp_path, monkeypatch):
  path = tmp_path / 'w.pth'
  path.write_bytes(b'')
  monkeypatch.setitem(sys.modules, 'torch', None)  # Makes `import torch` fail.
  with pytest.raises(ImportError, match=r'(?s)w.pth.*\.npz or \.safetensors.*python -c'):
    pretrained.load_torchvision_state_dict(str(path))


@pytest.fixture
def dpfah_config(tiny_config):
  tiny_config.model_name = 'dpfah_resnet18'
  tiny_config.model.attention = 'none'
  return tiny_config


def test_train_state_from_config(dpfah_config, state_dict, tmp_path):
  path = tmp_path / 'resnet18.npz'
  np.savez(path, **state_dict)
  dpfah_config.model.pretrained = str(path)
  validation.validate(dpfah_config, str(tmp_path / 'run'))
  model = state_lib.create_model(dpfah_config)
  state = state_lib.create_train_state(fast_key(0), dpfah_config, model)
  np.testing.assert_array_equal(
    state.params['layer4_1']['conv2']['kernel'],
    state_dict['layer4.1.conv2.weight'].transpose(2, 3, 1, 0),
  )
  np.testing.assert_array_equal(
    state.batch_stats['bn1']['var'], state_dict['bn1.running_var']
  )


def test_bad_pretrained_config_fails_in_validation(dpfah_config, tmp_path):
  dpfah_config.model.pretrained = '/no/such/resnet18.pth'
  with pytest.raises(
    FileNotFoundError, match=r"'/no/such/resnet18.pth' does not exist.*\.npz, \.safetensors"
  ):
    validation.validate(dpfah_config, str(tmp_path / 'run'))
  (tmp_path / 'w.npz').write_bytes(b'')
  dpfah_config.model.pretrained = str(tmp_path / 'w.npz')
  dpfah_config.model_name = 'dah_resnet30'
  dpfah_config.model.attention = 'cbam'
  with pytest.raises(ValueError, match='exist only for dpfah_resnet18'):
    validation.validate(dpfah_config, str(tmp_path / 'run'))
  with pytest.raises(ValueError, match='exist only for dpfah_resnet18'):
    state_lib.create_train_state(
      jax.random.key(0), dpfah_config, state_lib.create_model(dpfah_config)
    )
