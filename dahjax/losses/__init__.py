"""Hashing losses as pure functions over all pairs of a batch, and their registry.

Every loss is computed on B x B matrices over the pairs of the batch (no Python loop
over pairs), reads no configuration and is safe under `jax.jit` and `jax.grad`. Under a
data-parallel mesh the batch is one global array, so pairs that span devices count like
any other. One module per method (`dah`, `dpfah`, `dsh`, ...); `pairs` and
`classification` hold what they share.

`get_loss(name)` returns a registered total loss: a function of keyword arguments
`outputs` (the model's output dict), `labels` (0/1 [B, C]) and the loss's own
hyper-parameters, returning `(loss, aux)` where `aux` holds each term for logging.
Two keywords are the trainer's to fill, where a loss's signature has them: `step` (the
optimisation step, for a method's continuation schedule) and `memory` with `indices`
(state kept across steps, such as a memory of every training image's outputs, and the
batch images' positions in the training split); such a loss returns the updated memory
as `aux['memory']` and its initial value comes from `init_memory`.
"""

from collections.abc import Callable
import inspect
import types
import typing
from typing import Any

import jax

from dahjax import registry
from dahjax.losses.classification import sigmoid_cross_entropy
from dahjax.losses.classification import softmax_cross_entropy
from dahjax.losses.csq import csq_centers
from dahjax.losses.csq import csq_loss
from dahjax.losses.dah import dah_balance_term
from dahjax.losses.dah import dah_hash_loss
from dahjax.losses.dah import dah_loss
from dahjax.losses.dah import dah_similarity_term
from dahjax.losses.dbdh import dbdh_loss
from dahjax.losses.dfh import dfh_init_memory
from dahjax.losses.dfh import dfh_loss
from dahjax.losses.dhn import dhn_loss
from dahjax.losses.dpfah import dpfah_likelihood_loss
from dahjax.losses.dpfah import dpfah_loss
from dahjax.losses.dpfah import dpfah_quantization_loss
from dahjax.losses.dpsh import dpsh_init_memory
from dahjax.losses.dpsh import dpsh_loss
from dahjax.losses.dsdh import dsdh_init_memory
from dahjax.losses.dsdh import dsdh_loss
from dahjax.losses.dsh import dsh_loss
from dahjax.losses.greedyhash import greedyhash_loss
from dahjax.losses.hashnet import hashnet_beta
from dahjax.losses.hashnet import hashnet_loss
from dahjax.losses.idhn import idhn_loss
from dahjax.losses.lcdsh import lcdsh_loss
from dahjax.losses.pairs import balanced_pair_means
from dahjax.losses.pairs import check_batch_size
from dahjax.losses.pairs import off_diagonal_mean
from dahjax.losses.pairs import pairwise_similarity
from dahjax.losses.pairs import squared_distances

__all__ = [
  'balanced_pair_means',
  'check_batch_size',
  'check_hash_warmup',
  'csq_centers',
  'csq_loss',
  'dah_balance_term',
  'dah_hash_loss',
  'dah_loss',
  'dah_similarity_term',
  'dbdh_loss',
  'dfh_loss',
  'dhn_loss',
  'dpfah_likelihood_loss',
  'dpfah_loss',
  'dpfah_quantization_loss',
  'dpsh_loss',
  'dsdh_loss',
  'dsh_loss',
  'get_loss',
  'greedyhash_loss',
  'hashnet_beta',
  'hashnet_loss',
  'idhn_loss',
  'init_memory',
  'lcdsh_loss',
  'loss_kwargs',
  'names',
  'off_diagonal_mean',
  'pairwise_similarity',
  'setting_type',
  'settings',
  'sigmoid_cross_entropy',
  'softmax_cross_entropy',
  'squared_distances',
  'takes',
  'trains_classifier',
]

_LOSSES: dict[str, Callable[..., tuple[jax.Array, dict[str, jax.Array]]]] = {
  'csq': csq_loss,
  'dah': dah_loss,
  'dbdh': dbdh_loss,
  'dfh': dfh_loss,
  'dhn': dhn_loss,
  'dpfah': dpfah_loss,
  'dpsh': dpsh_loss,
  'dsdh': dsdh_loss,
  'dsh': dsh_loss,
  'greedyhash': greedyhash_loss,
  'hashnet': hashnet_loss,
  'idhn': idhn_loss,
  'lcdsh': lcdsh_loss,
}


def get_loss(name: str) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
  """Returns the registered total loss `name`.

  Args:
    name: a key of the registry (`names()`).

  Returns:
    The loss function: keyword arguments `outputs`, `labels` and its hyper-parameters,
    returning `(loss, aux)`.

  Raises:
    ValueError: an unknown name; the message lists the valid ones.

  Examples:
    >>> from dahjax import losses
    >>> print(losses.get_loss('dpfah').__name__)
    dpfah_loss
  """
  return registry.lookup(_LOSSES, name, 'loss', 'losses')


# Each loss's method as its paper names it.
TITLES = {
  'csq': 'CSQ',
  'dah': 'DAH',
  'dbdh': 'DBDH',
  'dfh': 'DFH',
  'dhn': 'DHN',
  'dpfah': 'DPFAH',
  'dpsh': 'DPSH',
  'dsdh': 'DSDH',
  'dsh': 'DSH',
  'greedyhash': 'GreedyHash',
  'hashnet': 'HashNet',
  'idhn': 'IDHN',
  'lcdsh': 'LCDSH',
}

# The losses that read the model's `logits` and so train its classifier; the others
# leave it at its initialisation (tests/methods_test.py checks this set on every loss).
_TRAINS_CLASSIFIER = frozenset({'dah', 'dpfah', 'greedyhash'})

# Initial memories of the losses that keep one: functions of (num_train, bits, num_classes).
_MEMORIES: dict[str, Callable[..., dict[str, jax.Array]]] = {
  'dfh': dfh_init_memory,
  'dpsh': dpsh_init_memory,
  'dsdh': dsdh_init_memory,
}

# The keywords a loss gets from the trainer rather than from its settings.
TRAINER_KEYWORDS = ('outputs', 'labels', 'hash_weight', 'step', 'memory', 'indices')


def takes(name: str, keyword: str) -> bool:
  """Whether loss `name` takes the keyword argument `keyword`."""
  return keyword in inspect.signature(get_loss(name)).parameters


def trains_classifier(name: str) -> bool:
  """Whether loss `name` reads the model's `logits`, training its classifier: without
  it the classifier keeps its initial weights, and its accuracy is chance.

  Examples:
    >>> from dahjax import losses
    >>> losses.trains_classifier('dpfah'), losses.trains_classifier('dsh')
    (True, False)
  """
  get_loss(name)  # An unknown name is refused.
  return name in _TRAINS_CLASSIFIER


def init_memory(name: str, *, num_train: int, bits: int, num_classes: int) -> dict:
  """The initial memory of loss `name` for `num_train` training images ({} when the loss
  keeps none)."""
  if name not in _MEMORIES:
    return {}
  return _MEMORIES[name](num_train=num_train, bits=bits, num_classes=num_classes)


def names() -> list[str]:
  """The registered losses' names, sorted."""
  return sorted(_LOSSES)


def settings(name: str) -> dict[str, Any]:
  """The hyper-parameters of loss `name` with their defaults (the method's published
  values), read from its signature: what a config's `loss.<name>` holds.

  Examples:
    >>> from dahjax import losses
    >>> losses.settings('dsh')
    {'margin': None, 'alpha': 0.01}
  """
  params = inspect.signature(get_loss(name)).parameters.values()
  return {p.name: p.default for p in params if p.name not in TRAINER_KEYWORDS}


def setting_type(name: str, key: str) -> type:
  """The type of setting `key` of loss `name` (its annotation, without None)."""
  hint = typing.get_type_hints(get_loss(name))[key]
  if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
    hint = next(t for t in typing.get_args(hint) if t is not type(None))
  return hint


def loss_kwargs(name: str, loss_config: Any) -> dict[str, Any]:
  """The hyper-parameters of loss `name`: `loss_config[name]` (a config's `loss` holds
  one dict of settings per loss), checked against the loss's signature.

  Raises:
    ValueError: a setting the loss does not take; the message lists those it takes.

  Examples:
    >>> from dahjax import losses
    >>> losses.loss_kwargs('dsh', {'dsh': {'alpha': 0.01}, 'dpfah': {'alpha': 0.5}})
    {'alpha': 0.01}
  """
  known = list(settings(name))
  values = dict(loss_config[name]) if name in loss_config else {}
  unknown = sorted(set(values) - set(known))
  if unknown:
    raise ValueError(
      f'loss.{name}.{unknown[0]}: loss {name!r} has no such setting; it takes '
      f'{", ".join(known) or "none"}.'
    )
  return values


def check_hash_warmup(name: str, warmup_steps: int) -> None:
  """Raises ValueError for a warm-up of the hash terms that loss `name` cannot take."""
  if warmup_steps < 0:
    raise ValueError(f'loss.hash_warmup_steps={warmup_steps}: use 0 (off) or more steps.')
  if warmup_steps and not takes(name, 'hash_weight'):
    those = sorted(n for n in _LOSSES if takes(n, 'hash_weight'))
    raise ValueError(
      f'loss.hash_warmup_steps={warmup_steps}: loss {name!r} has no weight to warm up; '
      f'the option is for {", ".join(those)} (set it to 0).'
    )
