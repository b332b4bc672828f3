"""Shared fixtures: a tiny real-image folder and a tiny DAH config."""

import os
import shutil

import numpy as np
import pytest

from configs import default
import dahjax

QUICKSTART = os.path.join(
  os.path.dirname(dahjax.__file__), 'data', 'assets', 'cifar10_quickstart'
)
CLASSES = ('airplane', 'automobile', 'bird')


@pytest.fixture(scope='session')
def tiny_folder(tmp_path_factory):
  """3 classes x (8 train, 4 test) real CIFAR-10 JPEGs from the quick-start subset."""
  root = tmp_path_factory.mktemp('tiny_cifar')
  for split, n in (('train', 8), ('test', 4)):
    for c in CLASSES:
      os.makedirs(root / split / c)
      for f in sorted(os.listdir(os.path.join(QUICKSTART, split, c)))[:n]:
        shutil.copyfile(os.path.join(QUICKSTART, split, c, f), root / split / c / f)
  return str(root)


@pytest.fixture
def tiny_config(tiny_folder):
  config = default.get_config()
  config.unlock()
  config.model.bits = 8
  config.model.num_classes = len(CLASSES)
  config.data.data_dir = tiny_folder
  config.batch_size = 6
  config.num_train_steps = 3
  config.log_every_steps = 1
  config.checkpoint_every_steps = 2
  config.eval.batch_size = 8
  config.eval.precision_at = 5
  return config


def random_images(n, size=32, seed=0):
  return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)
