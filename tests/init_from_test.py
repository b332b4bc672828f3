"""Tests of starting a run from another run's checkpoint (model.init_from) and of the
faster rate of new layers (optimizer.new_layers), as DSH fine-tunes its longer codes."""

import flax
import jax
import numpy as np
import optax
import pytest

from configs import default
from dahjax import state as state_lib
from dahjax import train
from dahjax import validation
from tests import conftest


def dsh_config(tiny_folder, bits):
  """The tiny config with DSH's CNN and loss at `bits` bits, 2 steps."""
  config = conftest.make_tiny_config(tiny_folder)
  config.model_name = 'dsh_cnn'
  config.loss_name = 'dsh'
  config.model.bits = bits
  config.data.image_size = 32
  config.num_train_steps = 2
  config.eval.batch_size = 12
  return config


@pytest.fixture(scope='module')
def source_run(tiny_folder, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('source'))
  train.train_and_evaluate(dsh_config(tiny_folder, 8), workdir)
  config = dsh_config(tiny_folder, 8)
  source = state_lib.restore_for_eval(config, workdir, state_lib.create_model(config))
  return workdir, source


def flat(tree):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))


def test_matching_parameters_are_copied_and_a_new_hash_layer_is_fresh(
  tiny_folder, source_run
):
  workdir, source = source_run
  config = dsh_config(tiny_folder, 16)
  fresh = state_lib.create_train_state(
    jax.random.key(1), config, state_lib.create_model(config)
  )
  config.model.init_from = workdir
  started = state_lib.create_train_state(
    jax.random.key(1), config, state_lib.create_model(config)
  )
  src, got, new = flat(source.params), flat(started.params), flat(fresh.params)
  hash_keys = {k for k in got if k[0] == 'hash'}
  assert hash_keys and all(
    got[k].shape != src[k].shape for k in hash_keys if k[-1] == 'kernel'
  )
  for key in got:
    expected = new[key] if key in hash_keys else src[key]
    np.testing.assert_array_equal(
      np.asarray(got[key]), np.asarray(expected), err_msg=str(key)
    )
  assert int(started.step) == 0


def test_the_same_code_length_copies_everything(tiny_folder, source_run):
  workdir, source = source_run
  config = dsh_config(tiny_folder, 8)
  config.model.init_from = workdir
  started = state_lib.create_train_state(
    jax.random.key(3), config, state_lib.create_model(config)
  )
  for key, value in flat(source.params).items():
    np.testing.assert_array_equal(np.asarray(flat(started.params)[key]), np.asarray(value))


def test_init_from_a_folder_that_is_no_run_is_refused(tiny_folder, tmp_path):
  config = dsh_config(tiny_folder, 8)
  config.model.init_from = str(tmp_path)
  with pytest.raises(FileNotFoundError, match='not a dahjax training workdir'):
    validation.validate(config, str(tmp_path / 'run'))


def test_new_layers_move_that_many_times_faster():
  for name in ('sgd', 'adam'):
    cfg = default.get_config()
    cfg.optimizer.update(name=name, learning_rate=1e-2, momentum=0.9)
    plain = state_lib.create_optimizer(cfg)
    cfg.optimizer.update(new_layers='hash', new_layers_lr_mult=10.0)
    scaled = state_lib.create_optimizer(cfg)
    params = {
      'hash': {'kernel': np.ones((3, 2), np.float32)},
      'conv1': {'kernel': np.ones(4, np.float32)},
    }
    grads = jax.tree.map(
      lambda p: np.cos(np.arange(p.size, dtype=np.float32)).reshape(p.shape), params
    )
    s1, s2 = plain.init(params), scaled.init(params)
    for _ in range(3):
      u1, s1 = plain.update(grads, s1, params)
      u2, s2 = scaled.update(grads, s2, params)
      np.testing.assert_allclose(u2['hash']['kernel'], 10 * u1['hash']['kernel'], rtol=1e-6)
      np.testing.assert_array_equal(u2['conv1']['kernel'], u1['conv1']['kernel'])
    assert isinstance(scaled, optax.GradientTransformation)


def test_new_layers_must_name_modules_of_the_model(tiny_folder):
  config = dsh_config(tiny_folder, 8)
  config.optimizer.new_layers = 'hsah'
  with pytest.raises(ValueError, match=r"names \['hsah'\], not parameter modules"):
    state_lib.create_train_state(jax.random.key(0), config, state_lib.create_model(config))
