"""The examples in the docstrings of the public losses, metrics and models run as shown."""

import doctest
import importlib
import pkgutil

import pytest

from dahjax import losses

MODULES = [
  'dahjax.losses',
  # Every loss module: one per method, and what they share.
  *(f'dahjax.losses.{m.name}' for m in pkgutil.iter_modules(losses.__path__)),
  'dahjax.retrieval',
  'dahjax.models.heads',
  'dahjax.models.attention',
  'dahjax.models.resnet30',
  'dahjax.models.resnet18',
  'dahjax.models.dsh_cnn',
]


@pytest.mark.parametrize('name', MODULES)
def test_docstring_examples(name):
  result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0, f'{name} has no examples'
  assert result.failed == 0
