"""Shared fixtures: a tiny real-image folder and a tiny DAH config."""

import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

from configs import default
import dahjax

QUICKSTART = os.path.join(
  os.path.dirname(dahjax.__file__), 'data', 'assets', 'cifar10_quickstart'
)
CLASSES = ('airplane', 'automobile', 'bird')

# One persistent XLA compilation cache for the whole test run, shared by the xdist
# workers and the runs the tests start as subprocesses (which inherit the environment):
# the tests build the same small programs many times over, and a cache hit replaces a
# compilation with a read of the same executable, so results do not change.
_CACHE_ENV = {
  'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
  'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1',
}


def pytest_configure(config):
  if 'JAX_COMPILATION_CACHE_DIR' not in os.environ and not hasattr(config, 'workerinput'):
    # The controller (or a run without xdist) makes the cache; workers inherit its path.
    config._dahjax_jax_cache = tempfile.mkdtemp(prefix='dahjax_test_jax_cache_')
    os.environ['JAX_COMPILATION_CACHE_DIR'] = config._dahjax_jax_cache
    for key, value in _CACHE_ENV.items():
      os.environ.setdefault(key, value)
  if 'JAX_COMPILATION_CACHE_DIR' in os.environ:
    jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
    jax.config.update(
      'jax_persistent_cache_min_compile_time_secs',
      float(os.environ.get('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '1')),
    )
    jax.config.update(
      'jax_persistent_cache_min_entry_size_bytes',
      int(os.environ.get('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')),
    )


def pytest_unconfigure(config):
  cache = getattr(config, '_dahjax_jax_cache', None)
  if cache:
    shutil.rmtree(cache, ignore_errors=True)


def copy_quickstart(root, classes, per_split) -> str:
  """Copies the first `per_split[split]` quick-start images of each class and split to
  `root/<split>/<class>/`; returns `root`."""
  for split, n in per_split.items():
    for c in classes:
      os.makedirs(os.path.join(root, split, c))
      for f in sorted(os.listdir(os.path.join(QUICKSTART, split, c)))[:n]:
        shutil.copyfile(
          os.path.join(QUICKSTART, split, c, f), os.path.join(root, split, c, f)
        )
  return str(root)


@pytest.fixture(scope='session')
def tiny_folder(tmp_path_factory):
  """3 classes x (8 train, 4 test) real CIFAR-10 JPEGs from the quick-start subset."""
  return copy_quickstart(
    tmp_path_factory.mktemp('tiny_cifar'), CLASSES, {'train': 8, 'test': 4}
  )


def make_tiny_config(folder):
  """A tiny DAH config over `folder` (3 classes): 8 bits, batch 6, 3 steps."""
  config = default.get_config()
  config.unlock()
  config.model.bits = 8
  config.model.num_classes = len(CLASSES)
  config.data.data_dir = folder
  config.batch_size = 6
  config.num_train_steps = 3
  config.log_every_steps = 1
  config.checkpoint_every_steps = 2
  config.eval.batch_size = 8
  config.eval.precision_at = 5
  return config


@pytest.fixture
def tiny_config(tiny_folder):
  return make_tiny_config(tiny_folder)


def random_images(n, size=32, seed=0):
  return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)
