"""Hashing losses as pure functions over all pairs of a batch, and their registry.

Every loss is computed on B x B matrices over the pairs of the batch (no Python loop
over pairs), reads no configuration and is safe under `jax.jit` and `jax.grad`. Under a
data-parallel mesh the batch is one global array, so pairs that span devices count like
any other. One module per method (`dah`, `dpfah`, `dsh`, ...); `pairs` and
`classification` hold what they share.

`get_loss(name)` returns a registered total loss: a function of keyword arguments
`outputs` (the model's output dict), `labels` (0/1 [B, C]) and the loss's own
hyper-parameters, returning `(loss, aux)` where `aux` holds each term for logging.
"""

from collections.abc import Callable
import inspect
from typing import Any

import jax

from dahjax import registry
from dahjax.losses.classification import sigmoid_cross_entropy
from dahjax.losses.classification import softmax_cross_entropy
from dahjax.losses.dah import dah_balance_term
from dahjax.losses.dah import dah_hash_loss
from dahjax.losses.dah import dah_loss
from dahjax.losses.dah import dah_similarity_term
from dahjax.losses.dpfah import dpfah_likelihood_loss
from dahjax.losses.dpfah import dpfah_loss
from dahjax.losses.dpfah import dpfah_quantization_loss
from dahjax.losses.dsh import dsh_loss
from dahjax.losses.pairs import check_batch_size
from dahjax.losses.pairs import off_diagonal_mean
from dahjax.losses.pairs import pairwise_similarity
from dahjax.losses.pairs import squared_distances

__all__ = [
  'check_batch_size',
  'check_hash_warmup',
  'dah_balance_term',
  'dah_hash_loss',
  'dah_loss',
  'dah_similarity_term',
  'dpfah_likelihood_loss',
  'dpfah_loss',
  'dpfah_quantization_loss',
  'dsh_loss',
  'get_loss',
  'loss_kwargs',
  'off_diagonal_mean',
  'pairwise_similarity',
  'sigmoid_cross_entropy',
  'softmax_cross_entropy',
  'squared_distances',
]

_LOSSES: dict[str, Callable[..., tuple[jax.Array, dict[str, jax.Array]]]] = {
  'dah': dah_loss,
  'dpfah': dpfah_loss,
  'dsh': dsh_loss,
}


def get_loss(name: str) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
  """Returns the registered total loss `name`.

  Args:
    name: a key of the registry: 'dah', 'dpfah', 'dsh'.

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
  params = inspect.signature(get_loss(name)).parameters
  takes = [k for k in params if k not in ('outputs', 'labels', 'hash_weight')]
  values = dict(loss_config[name]) if name in loss_config else {}
  unknown = sorted(set(values) - set(takes))
  if unknown:
    raise ValueError(
      f'loss.{name}.{unknown[0]}: loss {name!r} has no such setting; it takes '
      f'{", ".join(takes) or "none"}.'
    )
  return values


def check_hash_warmup(name: str, warmup_steps: int) -> None:
  """Raises ValueError for a warm-up of the hash terms that loss `name` cannot take."""
  if warmup_steps < 0:
    raise ValueError(f'loss.hash_warmup_steps={warmup_steps}: use 0 (off) or more steps.')
  if warmup_steps and 'hash_weight' not in inspect.signature(get_loss(name)).parameters:
    takes = sorted(
      n for n, f in _LOSSES.items() if 'hash_weight' in inspect.signature(f).parameters
    )
    raise ValueError(
      f'loss.hash_warmup_steps={warmup_steps}: loss {name!r} has no weight to warm up; '
      f'the option is for {", ".join(takes)} (set it to 0).'
    )
