"""Evaluation protocols: which images train, which query and which form the database.

A protocol reads the splits of a source (for CIFAR-10: 'train' and 'test') pooled
together and returns index arrays into that pool for 'train', 'query' and 'database'.
Splits drawn at random are drawn per class with a seed; every split is then put in an
order shuffled with the same seed (`shuffled`: the ranking breaks distance ties by
database position, which in class order would favour the first classes), and saved in
the workdir (`splits.json`, image ids per split in that order), so a resumed or repeated
run uses the same images in the same order.

Protocols (`config.data.protocol`; DAH Sec. IV.A, DPFAH "Datasets" and Table 6):

  dah_cifar10    train and database = the 'train' split, queries = 'test'; mAP@ALL.
  dah_cifar10_10k  a part of dah_cifar10 for quick studies: 1,000 training images per
                 class drawn from the 'train' split (also the database), queries =
                 'test'; mAP@ALL.
  dsh_cifar10    DSH's (its release's test_map.m): train = the 'train' split; the
                 'test' split is both the queries and the database (a query is in its
                 own database and counts as relevant to itself); mAP@ALL.
  dpfah_cifar10_val  a validation split inside dpfah_cifar10's training images: 400
                 per class train (and form the database), the other 100 per class are
                 the queries; dpfah_cifar10's queries are never read.
  dpfah_cifar10  100 queries and 500 training images per class from all images; the
                 rest is the database; mAP@ALL.
  imagenet100    source imagenet100. train = HashNet's 13,000 listed training images
                 (found by file name in the 'train' split), query = the 5,000 'query'
                 images, database = the whole 'train' split; mAP@1000.
  nuswide21      NUS-WIDE with its 21 most frequent labels (multi-label), from every
                 list file named in data.list_files, pooled. Images are taken once
                 each (a path listed twice counts once) in path order. With one
                 generator `np.random.default_rng(seed)`: for class c = 0..20 in turn,
                 100 queries are drawn uniformly, without replacement, among the images
                 labelled c that are not already queries; the database is every image
                 that is not a query; then for c = 0..20 in turn, 500 training images
                 are drawn likewise among the database images labelled c that are not
                 already training images (they stay in the database). 2,100 queries,
                 10,500 training images; mAP@5000.
  lists          train, query and database exactly as the source's 'train', 'test' and
                 'database' splits give them (DeepHash-pytorch's list files); mAP@ALL
                 unless config.eval.topk says otherwise.
  cifar10-1      DeepHash-pytorch's cifar10-1: dpfah_cifar10's draw, with the training
                 images also in the database (every image but the 1,000 queries);
                 mAP@ALL.
  nuswide_21     DeepHash-pytorch's nuswide_21: its train.txt (10,500) and test.txt
                 (2,100 queries), shipped with the package, found by path in the lists
                 named by data.list_files, which list every NUS-WIDE image with one of
                 the 21 concepts; the database is every listed image but the queries;
                 mAP@5000.

DeepHash-pytorch's names are accepted for the same protocols: `cifar10` is
dpfah_cifar10, `cifar10-2` is dah_cifar10, `imagenet` is imagenet100 (`ALIASES`).

A path listed in several list files (DeepHash-pytorch's train.txt is part of its
database.txt) is one image: its id maps to its first place in the pool.
"""

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import functools
import gzip
import json
import os

import jax
import numpy as np

from dahjax import atomic
from dahjax import registry
from dahjax.data import imagenet100_lists
from dahjax.data import sources as sources_lib

SPLITS_FILE = 'splits.json'


@dataclasses.dataclass
class Pool:
  """Several source splits seen as one indexable collection."""

  sources: dict[str, sources_lib.Source]

  def __post_init__(self):
    names = [s.class_names for s in self.sources.values()]
    if any(list(n) != list(names[0]) for n in names):
      raise ValueError(
        f'The splits {list(self.sources)} have different classes: '
        f'{[list(n) for n in names]}.'
      )
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

  def _source_of(self, index: int) -> tuple[sources_lib.Source, int]:
    k = int(np.searchsorted(self._offsets, index, side='right') - 1)
    return list(self.sources.values())[k], int(index - self._offsets[k])

  def load_image(self, index: int) -> np.ndarray:
    source, local = self._source_of(index)
    return source.load_image(local)

  def location(self, index: int) -> str:
    """Where image `index` is: its file for sources of files, else its id."""
    source, local = self._source_of(index)
    path_of = getattr(source, 'path_of', None)
    return path_of(local) if path_of else repr(self.ids[index])


@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
  """A named protocol: the source splits it reads, how it splits them, its mAP@K."""

  source_splits: tuple[str, ...] | None  # None: every split the source names.
  make_splits: Callable[[Pool, int], dict[str, np.ndarray]]
  map_topk: int | None  # None: mAP@ALL.
  description: str
  sources: tuple[str, ...] = ()  # The sources it works with; empty: any.
  multi_label: bool = False  # Whether its images may carry several labels.


def first_positions(pool: Pool) -> dict[str, int]:
  """Image id -> its first position in the pool (ids listed twice are one image)."""
  position = {}
  for i, image_id in enumerate(pool.ids):
    position.setdefault(image_id, i)
  return position


def _train_test(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  del seed  # Fixed splits.
  train = pool.indices_of('train')
  return {'train': train, 'query': pool.indices_of('test'), 'database': train}


def _dsh_cifar10(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  del seed  # Fixed splits.
  test = pool.indices_of('test')
  return {'train': pool.indices_of('train'), 'query': test, 'database': test}


def _train_part_test(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  train_split = pool.indices_of('train')
  part = per_class_split(pool.labels[train_split], {'train': 1000}, 'rest', seed)
  train = train_split[part['train']]
  return {'train': train, 'query': pool.indices_of('test'), 'database': train}


def per_class_split(
  labels: np.ndarray, counts: dict[str, int], rest: str, seed: int
) -> dict[str, np.ndarray]:
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
      raise ValueError(
        f'Class {c} has {len(members)} images, fewer than the {need} '
        f'the protocol draws per class ({counts}).'
      )
    start = 0
    for name, n in counts.items():
      out[name].append(members[start : start + n])
      start += n
    out[rest].append(members[start:])
  return {name: np.sort(np.concatenate(parts)) for name, parts in out.items()}


def _dpfah_cifar10(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  return per_class_split(pool.labels, {'query': 100, 'train': 500}, 'database', seed)


def _dpfah_cifar10_val(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  # The training images of dpfah_cifar10, split again: its queries are never read.
  train = _dpfah_cifar10(pool, seed)['train']
  part = per_class_split(pool.labels[train], {'query': 100}, 'train', seed + 1)
  return {
    'train': train[part['train']],
    'query': train[part['query']],
    'database': train[part['train']],
  }


def _find_listed(
  pool: Pool, split: str, names: Sequence[str], labels: np.ndarray, what: str
) -> np.ndarray:
  """Pool indices of the listed images in `split`; raises naming any that are missing."""
  indices = pool.indices_of(split)
  position = {pool.ids[i]: i for i in indices}
  missing = [n for n in names if n not in position]
  if missing:
    raise FileNotFoundError(
      f'{len(missing)} of the {len(names)} ImageNet-100 {what} are not in the '
      f'{split!r} split of the prepared data (first: {", ".join(missing[:5])}). '
      'ImageNet-100 needs the complete ILSVRC2012 training and validation images of '
      'its 100 classes; rebuild it from a complete copy with `python -m '
      'dahjax.data.imagenet100`.'
    )
  found = np.array([position[n] for n in names], dtype=np.int64)
  wrong = np.flatnonzero(pool.labels[found, labels] != 1)
  if len(wrong):
    raise ValueError(
      f'{len(wrong)} ImageNet-100 {what} carry another label in the data '
      f'than in the shipped list (first: {names[wrong[0]]}).'
    )
  return np.sort(found)


def _imagenet100(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  del seed  # Fixed lists.
  train = _find_listed(
    pool, 'train', *imagenet100_lists.train_list(), what='listed training images'
  )
  query = _find_listed(pool, 'query', *imagenet100_lists.query_list(), what='query images')
  return {'train': train, 'query': query, 'database': pool.indices_of('train')}


def draw_per_class(
  labels: np.ndarray,
  candidates: np.ndarray,
  per_class: int,
  rng: np.random.Generator,
  what: str,
) -> np.ndarray:
  """Draws `per_class` images labelled c among `candidates` for c = 0, 1, ...

  Multi-label: an image drawn for one class is not drawn again for a later one.
  Candidates are taken in the order given, so the draw depends only on that order,
  the labels and `rng`.
  """
  available = np.zeros(len(labels), dtype=bool)
  available[candidates] = True
  drawn = []
  for c in range(labels.shape[1]):
    members = candidates[available[candidates] & (labels[candidates, c] == 1)]
    if len(members) < per_class:
      raise ValueError(
        f'Class {c} has {len(members)} images left to draw {what} from, '
        f'fewer than the {per_class} the protocol draws per class.'
      )
    pick = rng.choice(members, size=per_class, replace=False)
    available[pick] = False
    drawn.append(pick)
  return np.sort(np.concatenate(drawn))


NUSWIDE21_QUERIES_PER_CLASS = 100
NUSWIDE21_TRAIN_PER_CLASS = 500


def _nuswide21(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  if pool.labels.shape[1] != 21:
    raise ValueError(
      f'Protocol nuswide21 needs the 21 NUS-WIDE labels, but the lists '
      f'have {pool.labels.shape[1]}; use protocol "lists" for lists that '
      'are already split.'
    )
  position = first_positions(pool)
  first = np.array([position[i] for i in pool.ids], dtype=np.int64)
  differ = np.flatnonzero((pool.labels != pool.labels[first]).any(axis=1))
  if len(differ):
    raise ValueError(f'{pool.ids[differ[0]]!r} is listed twice with different labels.')
  # In path order, so the draw does not depend on how the images are spread over lists.
  candidates = np.array([position[i] for i in sorted(position)], dtype=np.int64)
  rng = np.random.default_rng(seed)
  query = draw_per_class(
    pool.labels, candidates, NUSWIDE21_QUERIES_PER_CLASS, rng, 'queries'
  )
  rest = candidates[~np.isin(candidates, query)]
  train = draw_per_class(
    pool.labels, rest, NUSWIDE21_TRAIN_PER_CLASS, rng, 'training images'
  )
  database = np.sort(rest)
  return {'train': train, 'query': query, 'database': database}


def _cifar10_1(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  # dpfah_cifar10's draw (DeepHash-pytorch's `cifar10`), its training images also in
  # the database.
  split = _dpfah_cifar10(pool, seed)
  database = np.sort(np.concatenate([split['train'], split['database']]))
  return {'train': split['train'], 'query': split['query'], 'database': database}


NUSWIDE_21_DIR = os.path.join(os.path.dirname(__file__), 'assets', 'nuswide_21')


@functools.cache
def nuswide_21_list(split: str) -> tuple[tuple[str, ...], np.ndarray]:
  """(paths, 0/1 labels [n, 21]) of DeepHash-pytorch's nuswide_21 `train` or `test`
  list, shipped with the package (data/nuswide_21/<split>.txt of swuxyj/DeepHash-pytorch
  at commit ab14068, gzipped)."""
  with gzip.open(os.path.join(NUSWIDE_21_DIR, f'{split}.txt.gz'), 'rt') as f:
    rows = [line.split() for line in f if line.strip()]
  return tuple(r[0] for r in rows), np.array([r[1:] for r in rows], np.uint8)


def _nuswide_21(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  del seed  # Fixed lists.
  position = first_positions(pool)

  def find(split, what):
    paths, labels = nuswide_21_list(split)
    missing = [p for p in paths if p not in position]
    if missing:
      raise FileNotFoundError(
        f"{len(missing)} of DeepHash-pytorch's {len(paths):,} nuswide_21 {what} are not "
        f'in the lists named by data.list_files (first: {missing[0]}). List every '
        'NUS-WIDE image with one of the 21 concepts, the queries included (for '
        "example DeepHash-pytorch's test.txt and database.txt: "
        "--config.data.list_files='test=test.txt,database=database.txt'), with paths "
        'written as in its lists (images/<name>.jpg).'
      )
    found = np.array([position[p] for p in paths], np.int64)
    wrong = np.flatnonzero((pool.labels[found] != labels).any(axis=1))
    if len(wrong):
      raise ValueError(
        f'{len(wrong)} nuswide_21 {what} carry other labels in data.list_files than '
        f"in DeepHash-pytorch's list (first: {paths[wrong[0]]})."
      )
    return np.sort(found)

  if pool.labels.shape[1] != 21:
    raise ValueError(
      f'Protocol nuswide_21 needs the 21 NUS-WIDE labels, but the lists have '
      f'{pool.labels.shape[1]}.'
    )
  train, query = find('train', 'training images'), find('test', 'queries')
  every = np.array(sorted(set(position.values())), np.int64)
  return {'train': train, 'query': query, 'database': every[~np.isin(every, query)]}


def _lists(pool: Pool, seed: int) -> dict[str, np.ndarray]:
  del seed  # Fixed lists.
  position = first_positions(pool)

  def of(split):
    return np.array([position[pool.ids[i]] for i in pool.indices_of(split)], np.int64)

  return {'train': of('train'), 'query': of('test'), 'database': of('database')}


PROTOCOLS: dict[str, ProtocolSpec] = {
  'dah_cifar10': ProtocolSpec(
    ('train', 'test'),
    _train_test,
    None,
    'DAH (Sec. IV.A): train and database = the training split, queries = the test '
    'split; mAP@ALL.',
  ),
  'dah_cifar10_10k': ProtocolSpec(
    ('train', 'test'),
    _train_part_test,
    None,
    'A 10,000-image part of dah_cifar10 for quick studies: 1,000 training images '
    'per class (also the database), queries = the test split; mAP@ALL.',
  ),
  'dsh_cifar10': ProtocolSpec(
    ('train', 'test'),
    _dsh_cifar10,
    None,
    "DSH's CIFAR-10 evaluation as its release computes it (CIFAR-10/test_map.m): "
    "train on the 50,000 'train' images; the 10,000 'test' images are both the "
    'queries and the database, so each query finds itself; mAP@ALL.',
  ),
  'dpfah_cifar10': ProtocolSpec(
    ('train', 'test'),
    _dpfah_cifar10,
    None,
    'DPFAH (Table 6): from all images, 100 queries and 500 training images per '
    'class; the remaining images form the database; mAP@ALL.',
  ),
  'dpfah_cifar10_val': ProtocolSpec(
    ('train', 'test'),
    _dpfah_cifar10_val,
    None,
    "A validation split inside dpfah_cifar10's 5,000 training images, for choosing "
    'settings without the queries: 400 training images per class (also the '
    'database), 100 validation queries per class; mAP@ALL.',
  ),
  'imagenet100': ProtocolSpec(
    imagenet100_lists.SPLITS,
    _imagenet100,
    1000,
    'DPFAH (Table 6) ImageNet-100: the 13,000 listed training images, the 5,000 '
    'listed queries, every training image of the 100 classes as the database; '
    'mAP@1000.',
    sources=('imagenet100',),
  ),
  'lists': ProtocolSpec(
    ('train', 'test', 'database'),
    _lists,
    None,
    "The lists as given: train, queries = 'test', database; mAP@ALL.",
    multi_label=True,
  ),
  'cifar10-1': ProtocolSpec(
    ('train', 'test'),
    _cifar10_1,
    None,
    "DeepHash-pytorch's cifar10-1: dpfah_cifar10's draw of 100 queries and 500 "
    'training images per class, with every image but the queries (the training '
    'images included) as the database; mAP@ALL.',
  ),
  'nuswide_21': ProtocolSpec(
    None,
    _nuswide_21,
    5000,
    "DeepHash-pytorch's nuswide_21 lists (shipped): its 10,500 training images and "
    '2,100 queries; the database is every listed image but the queries (the training '
    'images included); mAP@5000.',
    sources=('list_file',),
    multi_label=True,
  ),
  'nuswide21': ProtocolSpec(
    None,
    _nuswide21,
    5000,
    'DPFAH (Table 6) NUS-WIDE, 21 labels: from all listed images, 100 queries and '
    '500 training images per class; the database is every image but the queries '
    'and holds the training images; mAP@5000.',
    sources=('list_file',),
    multi_label=True,
  ),
}


# The names DeepHash-pytorch (and the papers that use it) give the same protocols.
ALIASES = {
  'cifar10': 'dpfah_cifar10',
  'cifar10-2': 'dah_cifar10',
  'imagenet': 'imagenet100',
}


def canonical_name(name: str) -> str:
  """The registered name of protocol `name` (an alias names another protocol)."""
  return ALIASES.get(name, name)


def get_protocol(name: str) -> ProtocolSpec:
  aliased = {**PROTOCOLS, **{a: PROTOCOLS[t] for a, t in ALIASES.items()}}
  return registry.lookup(aliased, name, 'protocol')


def shuffled(splits: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
  """Each split in an order drawn with `seed` (`np.random.default_rng([seed, k])` for the
  k-th split name in sorted order).

  The protocols give their splits in pool order, which is class order for a folder per
  class; the ranking breaks ties in Hamming distance by database position, so a sorted
  database would put the first classes first within every group of equal distance.
  """
  return {
    name: np.random.default_rng([seed, k]).permutation(splits[name])
    for k, name in enumerate(sorted(splits))
  }


def load_or_create_splits(
  pool: Pool, protocol: str, seed: int, workdir: str | None
) -> dict[str, np.ndarray]:
  """The protocol's splits, read from `workdir/splits.json` when a run saved them."""
  path = os.path.join(workdir, SPLITS_FILE) if workdir else None
  if path and os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if canonical_name(saved['protocol']) != canonical_name(protocol):
      raise ValueError(
        f'{path} holds splits of protocol {saved["protocol"]!r}, not '
        f'{protocol!r}: use a fresh workdir for another protocol.'
      )
    position = first_positions(pool)
    missing = [i for ids in saved['splits'].values() for i in ids if i not in position]
    if missing:
      raise FileNotFoundError(
        f'{len(missing)} images named in {path} are not in the '
        f'data (first: {missing[0]!r}).'
      )
    return {
      name: np.array([position[i] for i in ids], dtype=np.int64)
      for name, ids in saved['splits'].items()
    }
  splits = shuffled(get_protocol(protocol).make_splits(pool, seed), seed)
  # Every process draws the same splits from the seed; process 0 records them.
  if path and jax.process_index() == 0:
    record = {
      'protocol': protocol,
      'seed': seed,
      'order': 'shuffled',  # Each split in an order drawn with the seed (`shuffled`).
      'class_names': pool.class_names,
      'splits': {k: [pool.ids[i] for i in v] for k, v in splits.items()},
    }
    atomic.write_json(path, record)
  return splits


def build_pool(source: str, data_dir: str, splits: Sequence[str], **kwargs) -> Pool:
  """The source's `splits`, pooled; `kwargs` go to the source (sources.get_source)."""
  return Pool(
    {
      s: sources_lib.get_source(source, data_dir=data_dir, split=s, **kwargs)
      for s in splits
    }
  )
