"""Builds a run's data from its config: the source splits pooled, and the protocol's splits."""

import dataclasses
import os

import ml_collections
import numpy as np

from dahjax.data import protocols


@dataclasses.dataclass
class Data:
  pool: protocols.Pool
  splits: dict[str, np.ndarray]      # 'train', 'query', 'database' -> pool indices.
  protocol: protocols.ProtocolSpec

  @property
  def num_classes(self) -> int:
    return len(self.pool.class_names)


def resolve_data_dir(data_dir: str) -> str:
  """Relative paths are taken from the working directory, `~` is expanded."""
  return os.path.abspath(os.path.expanduser(data_dir)) if data_dir else data_dir


def prepare(config: ml_collections.ConfigDict, workdir: str | None) -> Data:
  """Reads the source named by `config.data` and draws (or reloads) the protocol's splits."""
  cfg = config.data
  protocol = protocols.get_protocol(cfg.protocol)
  kwargs = ({'name': cfg.tfds_name, 'download': cfg.tfds_download}
            if cfg.source == 'tfds' else {})
  pool = protocols.build_pool(cfg.source, resolve_data_dir(cfg.data_dir),
                              protocol.source_splits, **kwargs)
  if config.model.num_classes != len(pool.class_names):
    raise ValueError(
        f'config.model.num_classes={config.model.num_classes} but the data at '
        f'{cfg.data_dir!r} has {len(pool.class_names)} classes ({pool.class_names[:5]}'
        f'...); set --config.model.num_classes={len(pool.class_names)}.')
  splits = protocols.load_or_create_splits(pool, cfg.protocol, cfg.split_seed, workdir)
  return Data(pool, splits, protocol)
