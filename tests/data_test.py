"""Tests of the data sources, protocols, samplers and pipelines."""

import dataclasses
import json
import os

from grain import multiprocessing as grain_mp
import ml_collections
import numpy as np
from PIL import Image
import pytest

from configs import default
from dahjax.data import input_data
from dahjax.data import pipeline
from dahjax.data import protocols
from dahjax.data import sources


def test_image_folder_source(tiny_folder):
  src = sources.ImageFolderSource(tiny_folder, 'train')
  assert src.class_names == ['airplane', 'automobile', 'bird']
  assert len(src) == 24 and src.labels.shape == (24, 3)
  np.testing.assert_array_equal(src.labels.sum(0), [8, 8, 8])
  img = src.load_image(9)
  assert img.shape == (32, 32, 3) and img.dtype == np.uint8
  assert src.ids[9].startswith('train/automobile/')
  with Image.open(os.path.join(tiny_folder, src.ids[9])) as ref:
    np.testing.assert_array_equal(img, np.asarray(ref.convert('RGB')))


def test_missing_or_empty_folder_names_path_and_layout(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'nowhere.*<root>/<split>/<class name>'):
    sources.ImageFolderSource(str(tmp_path / 'nowhere'), 'train')
  os.makedirs(tmp_path / 'train' / 'cat')
  with pytest.raises(FileNotFoundError, match='No images'):
    sources.ImageFolderSource(str(tmp_path), 'train')


def test_unknown_source_and_protocol_list_valid_names():
  with pytest.raises(ValueError, match='image_folder.*tfds'):
    sources.get_source('nope', data_dir='x', split='train')
  with pytest.raises(ValueError, match='dah_cifar10.*dpfah_cifar10'):
    protocols.get_protocol('nope')


def test_tfds_source_without_prepared_data_explains(tmp_path):
  with pytest.raises(FileNotFoundError, match='tfds build cifar10'):
    sources.get_source('tfds', data_dir=str(tmp_path), split='train')


def test_dah_protocol_and_saved_splits(tiny_folder, tmp_path):
  pool = protocols.build_pool('image_folder', tiny_folder, ('train', 'test'))
  splits = protocols.load_or_create_splits(pool, 'dah_cifar10', 0, str(tmp_path))
  assert len(splits['train']) == 24 and len(splits['query']) == 12
  np.testing.assert_array_equal(np.sort(splits['train']), np.sort(splits['database']))
  np.testing.assert_array_equal(np.sort(splits['train']), pool.indices_of('train'))
  assert all(pool.ids[i].startswith('test/') for i in splits['query'])
  # In an order shuffled with the split seed, not in class order.
  for name, indices in splits.items():
    k = sorted(splits).index(name)
    want = np.random.default_rng([0, k]).permutation(np.sort(indices))
    np.testing.assert_array_equal(indices, want)
  classes = np.argmax(pool.labels[splits['database']], axis=1)
  assert np.any(np.diff(classes) < 0)
  saved = json.loads((tmp_path / protocols.SPLITS_FILE).read_text())
  assert saved['protocol'] == 'dah_cifar10' and len(saved['splits']['query']) == 12
  assert saved['splits']['database'] == [pool.ids[i] for i in splits['database']]
  again = protocols.load_or_create_splits(pool, 'dah_cifar10', 0, str(tmp_path))
  for k in splits:
    np.testing.assert_array_equal(splits[k], again[k])
  # DeepHash-pytorch's name of the same protocol reads the same saved splits.
  alias = protocols.load_or_create_splits(pool, 'cifar10-2', 0, str(tmp_path))
  np.testing.assert_array_equal(alias['database'], splits['database'])
  with pytest.raises(ValueError, match='fresh workdir'):
    protocols.load_or_create_splits(pool, 'dpfah_cifar10', 0, str(tmp_path))


def test_per_class_split_counts_disjoint_and_seeded():
  labels = np.eye(3, dtype=np.uint8)[np.repeat(np.arange(3), 20)]
  a = protocols.per_class_split(labels, {'query': 2, 'train': 5}, 'database', seed=1)
  b = protocols.per_class_split(labels, {'query': 2, 'train': 5}, 'database', seed=1)
  c = protocols.per_class_split(labels, {'query': 2, 'train': 5}, 'database', seed=2)
  for name, per_class in (('query', 2), ('train', 5), ('database', 13)):
    np.testing.assert_array_equal(labels[a[name]].sum(0), [per_class] * 3)
    np.testing.assert_array_equal(a[name], b[name])
  assert not np.array_equal(a['query'], c['query'])
  everything = np.concatenate(list(a.values()))
  assert len(np.unique(everything)) == 60
  with pytest.raises(ValueError, match='fewer than'):
    protocols.per_class_split(labels, {'query': 15, 'train': 6}, 'database', seed=0)


def test_class_balanced_sampler():
  labels = np.eye(4, dtype=np.uint8)[np.repeat(np.arange(4), [7, 9, 6, 8])]
  indices = np.arange(len(labels))
  sampler = pipeline.make_sampler(
    'class_balanced', labels=labels, indices=indices, batch_size=8, seed=3
  )
  assert sampler.steps_per_epoch == 3  # Smallest class: 6 images, 2 per batch.
  seen = []
  for step in range(3):
    batch = sampler.batch_indices(step)
    np.testing.assert_array_equal(labels[batch].sum(0), [2, 2, 2, 2])
    # Interleaved: each half of the batch holds every class once.
    np.testing.assert_array_equal(labels[batch[:4]].sum(0), [1, 1, 1, 1])
    seen.extend(batch)
  assert len(set(seen)) == len(seen)  # No repeats within an epoch.
  assert not np.array_equal(sampler.batch_indices(0), sampler.batch_indices(3))
  again = pipeline.make_sampler(
    'class_balanced', labels=labels, indices=indices, batch_size=8, seed=3
  )
  np.testing.assert_array_equal(again.batch_indices(4), sampler.batch_indices(4))
  with pytest.raises(ValueError, match='divisible by the 4 classes'):
    pipeline.make_sampler(
      'class_balanced', labels=labels, indices=indices, batch_size=6, seed=0
    )


def test_random_sampler_and_unknown():
  sampler = pipeline.make_sampler(
    'random', labels=np.eye(2)[[0, 1] * 5], indices=np.arange(10), batch_size=4, seed=0
  )
  assert sampler.steps_per_epoch == 2
  both = np.concatenate([sampler.batch_indices(0), sampler.batch_indices(1)])
  assert len(set(both)) == 8
  with pytest.raises(ValueError, match='class_balanced, random'):
    pipeline.make_sampler('nope', labels=None, indices=None, batch_size=4, seed=0)


def test_train_dataset_is_deterministic_and_resumable(tiny_folder):
  pool = protocols.build_pool('image_folder', tiny_folder, ('train', 'test'))
  train = pool.indices_of('train')
  sampler = pipeline.make_sampler(
    'class_balanced', labels=pool.labels, indices=train, batch_size=6, seed=0
  )
  kw = dict(image_size=32, random_flip=True, seed=0, num_steps=6)
  full = list(pipeline.train_dataset(pool, sampler, start_step=0, **kw))
  resumed = list(pipeline.train_dataset(pool, sampler, start_step=4, **kw))
  assert len(full) == 6 and len(resumed) == 2
  for a, b in zip(full[4:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  assert full[0]['image'].shape == (6, 32, 32, 3) and full[0]['image'].dtype == np.uint8
  assert full[0]['flip'].shape == (6,) and full[0]['flip'].dtype == bool
  np.testing.assert_array_equal(full[0]['label'].sum(0), [2, 2, 2])
  # Two processes each read half of every global batch.
  halves = [
    list(
      pipeline.train_dataset(
        pool, sampler, start_step=0, process_index=p, process_count=2, **kw
      )
    )
    for p in range(2)
  ]
  for step in range(6):
    np.testing.assert_array_equal(
      np.concatenate([halves[0][step]['image'], halves[1][step]['image']]),
      full[step]['image'],
    )


def test_eval_batches_pad_and_keep_order(tiny_folder):
  pool = protocols.build_pool('image_folder', tiny_folder, ('train', 'test'))
  idx = pool.indices_of('test')
  batches = list(pipeline.eval_batches(pool, idx, batch_size=5, image_size=32))
  assert [n for _, n, _ in batches] == [5, 5, 2]
  assert all(images.shape == (5, 32, 32, 3) for images, _, _ in batches)
  assert all(readable.all() for _, _, readable in batches)
  np.testing.assert_array_equal(
    batches[1][0][0], pipeline.resize_square(pool.load_image(idx[5]), 32)
  )


# List files (the field's `path l_1 ... l_C` format), multi-label.


def _write_image(path, seed=0, fmt='JPEG'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(seed)
  Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(path, fmt)


def _write_list(path, rows):
  with open(path, 'w') as f:
    f.writelines(f'{p} {" ".join(str(v) for v in labels)}\n' for p, labels in rows)


@pytest.fixture
def list_root(tmp_path):
  """An image root with 8 images of 4 labels, listed multi-label with a blank line."""
  rows = [
    (
      f'images/{k // 4}/{k}.jpg',
      [int(k % 4 == c or (k + 1) % 4 == c and k % 3 == 0) for c in range(4)],
    )
    for k in range(8)
  ]
  rows[5] = (rows[5][0], [0, 0, 0, 0])  # An image with no label at all.
  for k, (path, _) in enumerate(rows):
    _write_image(str(tmp_path / path), seed=k)
  _write_list(tmp_path / 'all.txt', rows[:4])
  with open(tmp_path / 'all.txt', 'a') as f:
    f.write('\n')
  with open(tmp_path / 'all.txt', 'a') as f:
    f.writelines(f'{p} {" ".join(map(str, l))}\n' for p, l in rows[4:])
  return tmp_path, rows


def test_list_file_source_reads_multilabel_rows(list_root):
  root, rows = list_root
  src = sources.get_source(
    'list_file', data_dir=str(root), split='all', list_files={'all': 'all.txt'}
  )
  assert src.ids == [p for p, _ in rows]
  np.testing.assert_array_equal(src.labels, [l for _, l in rows])
  assert src.labels.dtype == np.uint8 and src.labels[0].sum() == 2  # Multi-label row.
  assert src.labels[5].sum() == 0
  assert src.class_names == ['class_0', 'class_1', 'class_2', 'class_3']
  img = src.load_image(3)
  assert img.shape == (12, 10, 3) and img.dtype == np.uint8
  (root / 'names.txt').write_text('a\nb\nc\nd\n')
  named = sources.get_source(
    'list_file',
    data_dir=str(root),
    split='all',
    list_files={'all': str(root / 'all.txt')},  # Absolute.
    class_names_file='names.txt',
  )
  assert named.class_names == ['a', 'b', 'c', 'd']


def test_list_file_errors_say_where(list_root):
  root, rows = list_root
  kw = dict(data_dir=str(root), split='all')
  with pytest.raises(
    FileNotFoundError,
    match=r"nope.txt' of split 'all' does not "
    r'exist.*split=path',
  ):
    sources.get_source('list_file', list_files={'all': 'nope.txt'}, **kw)
  with pytest.raises(ValueError, match='No list file for split'):
    sources.get_source('list_file', list_files={'train': 'all.txt'}, **kw)
  _write_list(root / 'short.txt', rows[:2] + [(rows[2][0], [0, 1, 0])])
  with pytest.raises(
    ValueError,
    match=r'short.txt:3: 3 labels after the path, expected '
    r'4 as on line 1',
  ):
    sources.get_source('list_file', list_files={'all': 'short.txt'}, **kw)
  (root / 'names.txt').write_text('a\nb\nc\n')
  with pytest.raises(
    ValueError,
    match=r'all.txt:1: 4 labels .* expected the 3 classes '
    'of names.txt',
  ):
    sources.get_source(
      'list_file', list_files={'all': 'all.txt'}, class_names_file='names.txt', **kw
    )
  with pytest.raises(FileNotFoundError, match='Class names file'):
    sources.get_source(
      'list_file', list_files={'all': 'all.txt'}, class_names_file='missing.txt', **kw
    )
  _write_list(root / 'bad.txt', rows[:1] + [(rows[1][0], [0, 2, 0, 1])])
  with pytest.raises(ValueError, match=r'bad.txt:2: labels must be 0 or 1, got 0 2 0 1'):
    sources.get_source('list_file', list_files={'all': 'bad.txt'}, **kw)
  # Missing images: the first or last line at once, any other when it is loaded.
  _write_list(root / 'gone.txt', rows[:2] + [('images/none.jpg', rows[0][1])] + rows[3:])
  src = sources.get_source('list_file', list_files={'all': 'gone.txt'}, **kw)
  with pytest.raises(
    FileNotFoundError,
    match=r"none.jpg' \(line 3 of .*gone.txt\) does "
    r'not exist.*relative to the image root',
  ):
    src.load_image(2)
  with pytest.raises(FileNotFoundError, match='line 1 of'):
    sources.get_source(
      'list_file',
      data_dir=str(root / 'images'),
      split='all',
      list_files={'all': str(root / 'all.txt')},
    )


def test_parse_list_files():
  assert sources.parse_list_files(' train = a.txt,test=b/c.txt ', None) == {
    'train': 'a.txt',
    'test': 'b/c.txt',
  }
  assert sources.parse_list_files('', ('train', 'test')) == {
    'train': 'train.txt',
    'test': 'test.txt',
  }
  assert sources.parse_list_files('x=1,train=t,test=q', ('train', 'test')) == {
    'train': 't',
    'test': 'q',
  }
  with pytest.raises(ValueError, match="'train' is not split=path"):
    sources.parse_list_files('train', None)
  with pytest.raises(ValueError, match="names split 'a' twice"):
    sources.parse_list_files('a=1,a=2', None)
  with pytest.raises(ValueError, match='names no list for database'):
    sources.parse_list_files('train=a,test=b', ('train', 'test', 'database'))
  with pytest.raises(ValueError, match='pools every list file'):
    sources.parse_list_files('', None)


@dataclasses.dataclass
class _ArraySource:
  """An in-memory source: ids and labels only."""

  ids: list
  labels: np.ndarray

  def __post_init__(self):
    self.class_names = [f'class_{c}' for c in range(self.labels.shape[1])]

  def __len__(self):
    return len(self.ids)


def _nuswide_like(n, seed=0, num_classes=21):
  """n images with 1 to 3 labels each, class frequencies falling with the class index."""
  rng = np.random.default_rng(seed)
  # Gumbel top-k: per row, k classes drawn without replacement with weights 1 / (c + 1).
  scores = -np.log(np.arange(1, num_classes + 1)) + rng.gumbel(size=(n, num_classes))
  ranks = np.argsort(np.argsort(-scores, axis=1), axis=1)
  labels = (ranks < rng.integers(1, 4, size=(n, 1))).astype(np.uint8)
  return [f'img/{i:06d}.jpg' for i in range(n)], labels


def test_nuswide21_draw():
  ids, labels = _nuswide_like(60000)
  pool = protocols.Pool({'all': _ArraySource(ids, labels)})
  spec = protocols.get_protocol('nuswide21')
  assert spec.map_topk == 5000 and spec.source_splits is None
  s = spec.make_splits(pool, 3)
  assert len(s['query']) == 2100 and len(s['train']) == 10500
  assert len(set(s['query'])) == 2100 and len(set(s['train'])) == 10500
  assert not set(s['query']) & set(s['database'])
  assert set(s['train']) <= set(s['database'])  # Training images stay in the database.
  assert len(s['query']) + len(s['database']) == 60000
  assert (labels[s['query']].sum(0) >= 100).all()
  assert (labels[s['train']].sum(0) >= 500).all()
  again = spec.make_splits(pool, 3)
  other = spec.make_splits(pool, 4)
  for k in s:
    np.testing.assert_array_equal(s[k], again[k])
  assert not np.array_equal(s['query'], other['query'])
  # The same images spread over two lists in another order, one listed twice, give
  # the same images in every split.
  order = np.random.default_rng(0).permutation(60000)
  a, b = order[:25000], order[25000:]
  twice = np.concatenate([b, a[:10]])
  split_pool = protocols.Pool(
    {
      'x': _ArraySource([ids[i] for i in a], labels[a]),
      'y': _ArraySource([ids[i] for i in twice], labels[twice]),
    }
  )
  s2 = spec.make_splits(split_pool, 3)
  for k in s:
    assert sorted(split_pool.ids[i] for i in s2[k]) == sorted(ids[i] for i in s[k])


def test_nuswide21_refuses_too_few_or_wrong_labels():
  ids, labels = _nuswide_like(3000)
  with pytest.raises(
    ValueError,
    match=r'Class \d+ has \d+ images left to draw queries '
    'from, fewer than the 100',
  ):
    protocols.get_protocol('nuswide21').make_splits(
      protocols.Pool({'all': _ArraySource(ids, labels)}), 0
    )
  ids, labels = _nuswide_like(100, num_classes=5)
  with pytest.raises(
    ValueError, match='needs the 21 NUS-WIDE labels, but the lists have 5'
  ):
    protocols.get_protocol('nuswide21').make_splits(
      protocols.Pool({'all': _ArraySource(ids, labels)}), 0
    )
  ids, labels = _nuswide_like(10)
  labels2 = labels.copy()
  labels2[0] = 1 - labels2[0]
  with pytest.raises(ValueError, match='listed twice with different labels'):
    protocols.get_protocol('nuswide21').make_splits(
      protocols.Pool(
        {'a': _ArraySource(ids, labels), 'b': _ArraySource(ids[:1], labels2[:1])}
      ),
      0,
    )


def _list_config(root, protocol, list_files, num_classes):
  config = default.get_config()
  config.unlock()
  config.model.num_classes = num_classes
  config.data.update(
    source='list_file',
    protocol=protocol,
    data_dir=str(root),
    list_files=list_files,
    split_seed=0,
  )
  return config


def test_nuswide21_from_list_files_and_saved_splits(tmp_path, monkeypatch):
  monkeypatch.setattr(protocols, 'NUSWIDE21_QUERIES_PER_CLASS', 2)
  monkeypatch.setattr(protocols, 'NUSWIDE21_TRAIN_PER_CLASS', 3)
  rows = [
    (f'im/{k}.png', [int(c in (k % 21, (k + 5) % 21)) for c in range(21)])
    for k in range(160)
  ]
  for k, (path, _) in enumerate(rows):
    _write_image(str(tmp_path / path), seed=k, fmt='PNG')
  _write_list(tmp_path / 'database.txt', rows[:150])
  _write_list(tmp_path / 'test.txt', rows[140:])  # Ten images listed in both.
  config = _list_config(tmp_path, 'nuswide21', 'database=database.txt,test=test.txt', 21)
  workdir = tmp_path / 'work'
  os.makedirs(workdir)
  data = input_data.prepare(config, str(workdir))
  s = data.splits
  assert len(s['query']) == 42 and len(s['train']) == 63 and len(s['database']) == 118
  assert data.protocol.map_topk == 5000
  assert len({data.pool.ids[i] for i in s['database']}) == 118
  again = input_data.prepare(config, str(workdir))
  for k in s:
    np.testing.assert_array_equal(s[k], again.splits[k])
  img = data.pool.load_image(int(s['query'][0]))
  assert img.shape == (12, 10, 3) and img.dtype == np.uint8


def test_lists_protocol_takes_the_lists_as_given(list_root, tmp_path):
  root, rows = list_root
  _write_list(root / 'train.txt', rows[:3])
  _write_list(root / 'test.txt', rows[6:])
  _write_list(root / 'database.txt', rows[:6])  # Holds the training images.
  config = _list_config(root, 'lists', '', 4)  # Default: <data_dir>/<split>.txt.
  workdir = tmp_path / 'work'
  os.makedirs(workdir)
  data = input_data.prepare(config, str(workdir))
  ids = lambda k: sorted(data.pool.ids[i] for i in data.splits[k])  # Order: shuffled.
  assert ids('train') == [p for p, _ in rows[:3]]
  assert ids('query') == [p for p, _ in rows[6:]]
  assert ids('database') == [p for p, _ in rows[:6]]
  assert data.protocol.map_topk is None
  labels = {p: l for p, l in rows}
  np.testing.assert_array_equal(
    data.pool.labels[data.splits['query']],
    [labels[data.pool.ids[i]] for i in data.splits['query']],
  )
  again = input_data.prepare(config, str(workdir))
  for k in data.splits:
    np.testing.assert_array_equal(data.splits[k], again.splits[k])
  config.data.list_files = 'train=train.txt,test=test.txt'
  with pytest.raises(ValueError, match='names no list for database'):
    input_data.prepare(config, None)


def test_protocol_source_mismatch_is_explained(tiny_folder):
  config = ml_collections.ConfigDict(
    {
      'model': {'num_classes': 3},
      'data': {
        'source': 'image_folder',
        'protocol': 'imagenet100',
        'data_dir': tiny_folder,
        'split_seed': 0,
      },
    }
  )
  with pytest.raises(ValueError, match='--config.data.source=imagenet100'):
    input_data.prepare(config, None)
  config.data.protocol = 'nuswide21'
  with pytest.raises(ValueError, match='--config.data.source=list_file'):
    input_data.prepare(config, None)


def _cifar_like(train_per_class, test_per_class, num_classes=10):
  def split(per_class, name):
    classes = np.repeat(np.arange(num_classes), per_class)
    return _ArraySource(
      [f'{name}/{i:05d}.jpg' for i in range(len(classes))],
      np.eye(num_classes, dtype=np.uint8)[classes],
    )

  return protocols.Pool(
    {'train': split(train_per_class, 'train'), 'test': split(test_per_class, 'test')}
  )


def test_study_protocols_stay_inside_their_training_images():
  pool = _cifar_like(1200, 100)
  train_split, test_split = pool.indices_of('train'), pool.indices_of('test')
  part = protocols.get_protocol('dah_cifar10_10k').make_splits(pool, 0)
  assert len(part['train']) == 10_000 and set(part['train']) <= set(train_split)
  np.testing.assert_array_equal(part['database'], part['train'])
  np.testing.assert_array_equal(part['query'], test_split)
  assert (pool.labels[part['train']].sum(0) == 1000).all()

  full = protocols.get_protocol('dpfah_cifar10').make_splits(pool, 0)
  val = protocols.get_protocol('dpfah_cifar10_val').make_splits(pool, 0)
  # Inside the 5,000 training images of dpfah_cifar10; its queries are never used.
  assert set(val['train']) | set(val['query']) == set(full['train'])
  assert not set(val['train']) & set(val['query'])
  assert not (set(val['query']) | set(val['database'])) & set(full['query'])
  assert (pool.labels[val['query']].sum(0) == 100).all()
  assert (pool.labels[val['train']].sum(0) == 400).all()
  np.testing.assert_array_equal(val['database'], val['train'])


def test_deephash_pytorch_cifar10_protocols():
  pool = _cifar_like(550, 150)  # 700 per class: 100 left for cifar10's database.
  every = np.arange(len(pool))
  cifar10 = protocols.get_protocol('cifar10').make_splits(pool, 3)
  dpfah = protocols.get_protocol('dpfah_cifar10').make_splits(pool, 3)
  for k in dpfah:
    np.testing.assert_array_equal(cifar10[k], dpfah[k])
  one = protocols.get_protocol('cifar10-1').make_splits(pool, 3)
  np.testing.assert_array_equal(one['query'], dpfah['query'])
  np.testing.assert_array_equal(one['train'], dpfah['train'])
  # Database: every image but the queries, the training images included.
  np.testing.assert_array_equal(one['database'], np.setdiff1d(every, one['query']))
  assert len(one['query']) == 1000 and len(one['train']) == 5000
  assert len(one['database']) == 6000 and len(cifar10['database']) == 1000
  assert (pool.labels[one['query']].sum(0) == 100).all()
  two = protocols.get_protocol('cifar10-2').make_splits(pool, 3)
  np.testing.assert_array_equal(two['query'], pool.indices_of('test'))
  np.testing.assert_array_equal(two['database'], pool.indices_of('train'))
  assert protocols.canonical_name('imagenet') == 'imagenet100'
  with pytest.raises(ValueError, match='cifar10-1'):
    protocols.get_protocol('cifar10-3')


def test_nuswide_21_takes_deephash_pytorchs_lists(tmp_path):
  train_paths, train_labels = protocols.nuswide_21_list('train')
  test_paths, test_labels = protocols.nuswide_21_list('test')
  assert len(train_paths) == 10_500 and len(test_paths) == 2_100
  assert train_labels.shape == (10_500, 21) and (train_labels.sum(1) >= 1).all()
  assert not set(train_paths) & set(test_paths)
  # The user's complete list: the queries, the training images and 40 others, in
  # another order; only its first and last images need to exist for the split.
  rng = np.random.default_rng(0)
  extra = [(f'images/extra_{i}.jpg', rng.integers(0, 2, 21)) for i in range(40)]
  rows = list(zip(test_paths, test_labels)) + extra + list(zip(train_paths, train_labels))
  rows = [rows[i] for i in rng.permutation(len(rows))]
  _write_list(tmp_path / 'all.txt', rows)
  for path in (rows[0][0], rows[-1][0]):
    _write_image(str(tmp_path / path))
  config = _list_config(tmp_path, 'nuswide_21', 'all=all.txt', 21)
  data = input_data.prepare(config, None)
  ids = {k: {data.pool.ids[i] for i in v} for k, v in data.splits.items()}
  assert ids['train'] == set(train_paths) and ids['query'] == set(test_paths)
  assert ids['database'] == {p for p, _ in rows} - set(test_paths)
  assert data.protocol.map_topk == 5000
  # A list without the queries says what to list.
  rows = [r for r in rows if r[0] not in set(test_paths)]
  _write_list(tmp_path / 'all.txt', rows)
  for path in (rows[0][0], rows[-1][0]):
    _write_image(str(tmp_path / path))
  with pytest.raises(FileNotFoundError, match=r'2,100 nuswide_21 queries.*test.txt'):
    input_data.prepare(config, None)


def test_worker_processes_give_the_same_batches(tiny_folder):
  from absl import flags  # pylint: disable=g-import-not-at-top

  if not flags.FLAGS.is_parsed():  # grain's workers read absl flags.
    flags.FLAGS.mark_as_parsed()
  pool = protocols.build_pool('image_folder', tiny_folder, ('train', 'test'))
  sampler = pipeline.make_sampler(
    'class_balanced',
    labels=pool.labels,
    indices=pool.indices_of('train'),
    batch_size=6,
    seed=0,
  )
  # 112 px: the image batches are large enough to be stacked into shared memory.
  kw = dict(image_size=112, random_flip=True, seed=0, start_step=1, num_steps=7)
  threads = list(pipeline.train_dataset(pool, sampler, num_threads=2, **kw))
  workers = list(pipeline.train_dataset(pool, sampler, num_workers=2, num_threads=1, **kw))
  assert len(threads) == len(workers) == 6
  for a, b in zip(threads, workers):
    for key in ('image', 'flip', 'label', 'index'):
      np.testing.assert_array_equal(a[key], b[key])
    assert isinstance(b['image'], grain_mp.SharedMemoryArray)  # No copy on the way.
    assert not isinstance(a['image'], grain_mp.SharedMemoryArray)
  idx = pool.indices_of('test')
  kw = dict(batch_size=5, image_size=112)
  for a, b in zip(
    pipeline.eval_batches(pool, idx, **kw),
    pipeline.eval_batches(pool, idx, num_workers=2, **kw),
    strict=True,
  ):
    np.testing.assert_array_equal(a[0], b[0])
    assert isinstance(b[0], grain_mp.SharedMemoryArray)
    assert a[1] == b[1]
    np.testing.assert_array_equal(a[2], b[2])


def test_dsh_protocol_queries_are_their_own_database():
  pool = _cifar_like(30, 10)
  splits = protocols.get_protocol('dsh_cifar10').make_splits(pool, 0)
  np.testing.assert_array_equal(splits['train'], pool.indices_of('train'))
  np.testing.assert_array_equal(splits['query'], pool.indices_of('test'))
  np.testing.assert_array_equal(splits['database'], pool.indices_of('test'))
