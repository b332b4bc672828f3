"""Every shipped config passes validation and documents its run command."""

import importlib
import os

import pytest

from dahjax import validation
from dahjax.data import checks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_config(name: str) -> bool:
  with open(os.path.join(ROOT, 'configs', name)) as f:
    return 'def get_config(' in f.read()


# Config files define get_config(); configs/papers.py holds the papers' numbers.
CONFIGS = sorted(
  f[:-3]
  for f in os.listdir(os.path.join(ROOT, 'configs'))
  if f.endswith('.py') and _is_config(f)
)


def test_configs_are_found():
  assert {
    'default',
    'quickstart',
    'dah_cifar10',
    'dpfah_cifar10',
    'dpfah_cifar10_32px',
    'dpfah_imagenet100',
    'dpfah_nuswide21',
  } <= set(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_validates(name, tmp_path, monkeypatch):
  """Model, loss, protocol, sampler, transform and optimiser of each config are valid
  (the data sets themselves need not be on this machine)."""
  monkeypatch.setattr(checks, 'check_data', lambda data: None)
  config = importlib.import_module(f'configs.{name}').get_config()
  validation.validate(config, str(tmp_path / 'workdir'))


@pytest.mark.parametrize('name', [n for n in CONFIGS if n != 'default'])
def test_config_docstring_gives_its_command(name):
  doc = importlib.import_module(f'configs.{name}').__doc__
  assert f'--config configs/{name}.py' in doc.replace('\\\n', ' ')


@pytest.mark.parametrize(
  'config, method, protocol',
  [
    ('dah_cifar10', 'DAH', 'dah_cifar10'),
    ('dah_cifar10', 'NoneA-DAH', 'dah_cifar10'),
    ('dpfah_cifar10', 'DPFAH', 'dpfah_cifar10'),
    ('dpfah_imagenet100', 'DPFAH', 'imagenet100'),
    ('dpfah_nuswide21', 'DPFAH', 'nuswide21'),
  ],
)
def test_paper_numbers_match_the_config_docstrings(config, method, protocol):
  """configs/papers.py (read by compare --paper) and the docstrings say the same."""
  from configs import papers  # pylint: disable=g-import-not-at-top

  doc = importlib.import_module(f'configs.{config}').__doc__
  for numbers in papers.PAPER_RESULTS[method, protocol].values():
    assert f'{numbers["map"]:.4f}' in doc
