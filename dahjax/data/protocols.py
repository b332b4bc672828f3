"""Evaluation protocols: which images train, which query and which form the database.

A protocol reads the splits of a source (for CIFAR-10: 'train' and 'test') pooled
together and returns index arrays into that pool for 'train', 'query' and 'database'.
Splits drawn at random are drawn per class with a seed and saved in the workdir
(`splits.json`, image ids per split), so a resumed or repeated run uses the same images.
"""

import dataclasses
import json
import os
from typing import Callable, Sequence

import numpy as np

from dahjax.data import sources as sources_lib

SPLITS_FILE = 'splits.json'


@dataclasses.dataclass
class Pool:
  """Several source splits seen as one indexable collection."""
  sources: dict[str, sources_lib.Source]

  def __post_init__(self):
    names = [s.class_names for s in self.sources.values()]
    if any(list(n) != list(names[0]) for n in names):
      raise ValueError(f'The splits {list(self.sources)} have different classes: '
                       f'{[list(n) for n in names]}.')
    self.class_names = list(names[0])
    self.split_names = list(self.sources)
    sizes = [len(s) for s in self.sources.values()]
    self._offsets = np.cumsum([0] + sizes)
    self.split_of = np.repeat(np.arange(len(sizes)), sizes)
    self.ids = [i for s in self.sources.values() for i in s.ids]
    self.labels = np.concatenate([s.labels for s in self.sources.values()])

  def __len__(self) -> int:
    return len(self.ids)

  def indices_of(self, split: str) -> np.ndarray:
    return np.flatnonzero(self.split_of == self.split_names.index(split))

  def load_image(self, index: int) -> np.ndarray:
    k = int(np.searchsorted(self._offsets, index, side='right') - 1)
    return list(self.sources.values())[k].load_image(int(index - self._offsets[k]))


@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
  """A named protocol: the source splits it reads, how it splits them, its mAP@K."""
  source_splits: tuple[str, ...]
  make_splits: Callable[[Pool, int], dict[str, np.ndarray]]
  map_topk: int | None  # None: mAP@ALL.
  description: str


def _train_test(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  del seed  # Fixed splits.
  train = pool.indices_of('train')
  return {'train': train, 'query': pool.indices_of('test'), 'database': train}


def per_class_split(labels: np.ndarray, counts: dict[str, int], rest: str,
                    seed: int) -> dict[str, np.ndarray]:
  """Draws `counts[name]` items of every class for each split; `rest` gets the others.

  Classes are taken from single-label one-hot `labels` [n, C]; the draw depends only on
  `seed` and the labels.
  """
  rng = np.random.default_rng(seed)
  classes = np.argmax(labels, axis=1)
  out = {name: [] for name in [*counts, rest]}
  for c in range(labels.shape[1]):
    members = rng.permutation(np.flatnonzero(classes == c))
    need = sum(counts.values())
    if len(members) < need:
      raise ValueError(f'Class {c} has {len(members)} images, fewer than the {need} '
                       f'the protocol draws per class ({counts}).')
    start = 0
    for name, n in counts.items():
      out[name].append(members[start:start + n])
      start += n
    out[rest].append(members[start:])
  return {name: np.sort(np.concatenate(parts)) for name, parts in out.items()}


def _dpfah_cifar10(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  return per_class_split(pool.labels, {'query': 100, 'train': 500}, 'database', seed)


PROTOCOLS: dict[str, ProtocolSpec] = {
    'dah_cifar10': ProtocolSpec(
        ('train', 'test'), _train_test, None,
        'DAH (SPEC 2.5): train and database = the training split, queries = the test '
        'split; mAP@ALL.'),
    'dpfah_cifar10': ProtocolSpec(
        ('train', 'test'), _dpfah_cifar10, None,
        'DPFAH (SPEC 3.5): from all images, 100 queries and 500 training images per '
        'class; the remaining images form the database; mAP@ALL.'),
}


def get_protocol(name: str) -> ProtocolSpec:
  if name not in PROTOCOLS:
    raise ValueError(f'Unknown protocol {name!r}; valid protocols: '
                     f'{", ".join(sorted(PROTOCOLS))}.')
  return PROTOCOLS[name]


def load_or_create_splits(pool: Pool, protocol: str, seed: int,
                          workdir: str | None) -> dict[str, np.ndarray]:
  """The protocol's splits, read from `workdir/splits.json` when a run saved them."""
  path = os.path.join(workdir, SPLITS_FILE) if workdir else None
  if path and os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if saved['protocol'] != protocol:
      raise ValueError(f'{path} holds splits of protocol {saved["protocol"]!r}, not '
                       f'{protocol!r}: use a fresh workdir for another protocol.')
    position = {image_id: i for i, image_id in enumerate(pool.ids)}
    missing = [i for ids in saved['splits'].values() for i in ids if i not in position]
    if missing:
      raise FileNotFoundError(f'{len(missing)} images named in {path} are not in the '
                              f'data (first: {missing[0]!r}).')
    return {name: np.array([position[i] for i in ids], dtype=np.int64)
            for name, ids in saved['splits'].items()}
  splits = get_protocol(protocol).make_splits(pool, seed)
  if path:
    record = {'protocol': protocol, 'seed': seed, 'class_names': pool.class_names,
              'splits': {k: [pool.ids[i] for i in v] for k, v in splits.items()}}
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
      json.dump(record, f)
    os.replace(tmp, path)
  return splits


def build_pool(source: str, data_dir: str, splits: Sequence[str], **kwargs) -> Pool:
  return Pool({s: sources_lib.get_source(source, data_dir=data_dir, split=s, **kwargs)
               for s in splits})
