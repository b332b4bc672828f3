"""Builds a run's data from its config: the source splits pooled, and the protocol's splits."""

import dataclasses
import os
from typing import Any

import ml_collections
import numpy as np

from dahjax.data import protocols
from dahjax.data import sources


@dataclasses.dataclass
class Data:
  pool: protocols.Pool
  splits: dict[str, np.ndarray]  # 'train', 'query', 'database' -> pool indices.
  protocol: protocols.ProtocolSpec

  @property
  def num_classes(self) -> int:
    return len(self.pool.class_names)


def resolve_data_dir(data_dir: str) -> str:
  """Relative paths are taken from the working directory, `~` is expanded."""
  return os.path.abspath(os.path.expanduser(data_dir)) if data_dir else data_dir


def source_args(cfg: ml_collections.ConfigDict) -> tuple[tuple[str, ...], dict[str, Any]]:
  """The source splits the run reads and the source's keyword arguments.

  Raises:
    ValueError: the protocol does not work with the source, or the list files named
      do not fit the protocol.
  """
  protocol = protocols.get_protocol(cfg.protocol)
  if protocol.sources and cfg.source not in protocol.sources:
    raise ValueError(
      f'Protocol {cfg.protocol!r} reads the source '
      f'{" or ".join(protocol.sources)}, not {cfg.source!r}; set '
      f'--config.data.source={protocol.sources[0]}.'
    )
  splits = protocol.source_splits
  kwargs = {}
  if cfg.source == 'tfds':
    kwargs = {'name': cfg.tfds_name, 'download': cfg.tfds_download}
  elif cfg.source == 'imagenet100':
    kwargs = {'config': cfg.imagenet100_config}
  elif cfg.source == 'list_file':
    list_files = sources.parse_list_files(cfg.list_files, splits)
    kwargs = {'list_files': list_files, 'class_names_file': cfg.class_names_file}
    splits = tuple(list_files)
  if splits is None:
    raise ValueError(
      f'Protocol {cfg.protocol!r} pools every list file, which needs '
      '--config.data.source=list_file.'
    )
  return tuple(splits), kwargs


def prepare(config: ml_collections.ConfigDict, workdir: str | None) -> Data:
  """Reads the source named by `config.data` and draws (or reloads) the protocol's splits."""
  cfg = config.data
  protocol = protocols.get_protocol(cfg.protocol)
  splits, kwargs = source_args(cfg)
  pool = protocols.build_pool(cfg.source, resolve_data_dir(cfg.data_dir), splits, **kwargs)
  if config.model.num_classes != len(pool.class_names):
    raise ValueError(
      f'config.model.num_classes={config.model.num_classes} but the data at '
      f'{cfg.data_dir!r} has {len(pool.class_names)} classes ({pool.class_names[:5]}'
      f'...); set --config.model.num_classes={len(pool.class_names)}.'
    )
  splits = protocols.load_or_create_splits(pool, cfg.protocol, cfg.split_seed, workdir)
  return Data(pool, splits, protocol)
