"""Tests of ImageNet-100: the shipped lists, the tfds builder, its source and protocol.

A fake ILSVRC2012 copy (a few tiny JPEGs of three of the 100 classes, named as in the
shipped lists) is built in both accepted layouts; the lists are cut down to the fake
images so that the builder and the protocol find all they need.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zlib

import numpy as np
from PIL import Image
import pytest

from configs import default
from dahjax.data import imagenet100
from dahjax.data import imagenet100_lists as lists
from dahjax.data import input_data
from dahjax.data import protocols
from dahjax.data import sources

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTRIBUTED = os.path.join(REPO, '..', 'shared', 'data', 'imagenet100')
CLASSES = (0, 1, 57)
TRAIN_PER_CLASS = 3  # Listed training images per class; one unlisted image is added.
QUERIES_PER_CLASS = 2


def fake_image(name: str, mode: str = 'RGB', fmt: str = 'JPEG') -> bytes:
  """A small image whose pixels and size depend only on its name."""
  rng = np.random.default_rng(zlib.crc32(name.encode()))
  w, h = int(rng.integers(20, 40)), int(rng.integers(20, 40))
  img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
  out = io.BytesIO()
  img.save(out, format=fmt)
  return out.getvalue()


def fake_subset():
  """(train names by class, unlisted train names, queries) of the fake copy."""
  names, labels = lists.train_list()
  q_names, q_labels = lists.query_list()
  train = {
    c: [n for n, l in zip(names, labels) if l == c][:TRAIN_PER_CLASS] for c in CLASSES
  }
  extra = {c: f'{lists.classes()[c]}_999999' for c in CLASSES}
  assert not set(extra.values()) & set(names)
  queries = [
    (n, c)
    for c in CLASSES
    for n in [n for n, l in zip(q_names, q_labels) if l == c][:QUERIES_PER_CLASS]
  ]
  return train, extra, queries


# Unusual files as ILSVRC2012 has a few: grayscale, CMYK, a PNG named .JPEG.
ODD_MODES = {0: ('L', 'JPEG'), 1: ('CMYK', 'JPEG'), 2: ('RGB', 'PNG')}


def train_files(c: int, train, extra) -> dict[str, bytes]:
  files = {}
  for k, name in enumerate(train[c] + [extra[c]]):
    mode, fmt = ODD_MODES.get(k, ('RGB', 'JPEG')) if c == CLASSES[0] else ('RGB', 'JPEG')
    files[f'{name}.JPEG'] = fake_image(name, mode, fmt)
  return files


def _add(tar: tarfile.TarFile, name: str, data: bytes):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def make_manual_dir(root, layout: str):
  """A fake ILSVRC2012 copy: 'folders' (val in class folders) or 'archives'."""
  train, extra, queries = fake_subset()
  os.makedirs(root)
  if layout == 'folders':
    for c, wnid in enumerate(lists.classes()):
      os.makedirs(root / 'train' / wnid)  # The other classes stay empty.
      if c in train:
        for f, data in train_files(c, train, extra).items():
          (root / 'train' / wnid / f).write_bytes(data)
    for name, c in queries:
      os.makedirs(root / 'val' / lists.classes()[c], exist_ok=True)
      (root / 'val' / lists.classes()[c] / f'{name}.JPEG').write_bytes(fake_image(name))
    return
  with tarfile.open(root / lists.TRAIN_TAR, 'w') as outer:
    for c, wnid in enumerate(lists.classes()):
      buf = io.BytesIO()
      with tarfile.open(fileobj=buf, mode='w') as inner:
        for f, data in (train_files(c, train, extra) if c in train else {}).items():
          _add(inner, f, data)
      _add(outer, f'{wnid}.tar', buf.getvalue())
  with tarfile.open(root / lists.VAL_TAR, 'w') as val:
    for name, _ in queries + [('ILSVRC2012_val_00099999', 0)]:  # Plus an unlisted one.
      _add(val, f'{name}.JPEG', fake_image(name))


@pytest.fixture(scope='module')
def fake_lists():
  """The shipped lists cut down to the fake copy, for the whole module."""
  train, _, queries = fake_subset()
  train_names = tuple(n for c in CLASSES for n in train[c])
  train_labels = np.repeat(CLASSES, TRAIN_PER_CLASS)
  q_names, q_labels = zip(*queries)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(lists, 'train_list', lambda: (train_names, train_labels))
    mp.setattr(lists, 'query_list', lambda: (q_names, np.array(q_labels)))
    yield train_names, q_names


@pytest.fixture(scope='module')
def built(tmp_path_factory, fake_lists):
  """data_dirs of the fake copy built from both layouts (and originals from one)."""
  del fake_lists
  root = tmp_path_factory.mktemp('imagenet100')
  out = {}
  for layout in ('folders', 'archives'):
    make_manual_dir(root / f'manual_{layout}', layout)
    out[layout] = str(root / f'data_{layout}')
    imagenet100.build(str(root / f'manual_{layout}'), out[layout], workers=2)
  imagenet100.build(
    str(root / 'manual_archives'), out['archives'], config='original', workers=2
  )
  return out


def test_shipped_lists_shape():
  assert len(lists.classes()) == 100 and list(lists.classes()) == sorted(lists.classes())
  for (names, labels), n in ((lists.train_list(), 130), (lists.query_list(), 50)):
    np.testing.assert_array_equal(np.bincount(labels, minlength=100), [n] * 100)
    assert len(set(names)) == len(names)
  names, labels = lists.train_list()
  assert all(n.startswith(lists.classes()[c] + '_') for n, c in zip(names, labels))
  assert all(n.startswith('ILSVRC2012_val_') for n in lists.query_list()[0])


@pytest.mark.skipif(
  not os.path.isdir(DISTRIBUTED),
  reason='the distributed ImageNet-100 lists are not available',
)
def test_shipped_lists_equal_the_distributed_ones(tmp_path):
  counts = lists.convert(DISTRIBUTED, str(tmp_path))
  assert counts == {'classes.txt': 100, 'train.txt': 13000, 'query.txt': 5000}
  for name in counts:
    with open(os.path.join(lists.ASSETS_DIR, name)) as shipped:
      assert (tmp_path / name).read_text() == shipped.read(), name


def test_distributed_list_must_be_single_label(tmp_path):
  (tmp_path / 'l.txt').write_text('image/a_1.JPEG 0 1 0\nimage/a_2.JPEG 1 1 0\n')
  with pytest.raises(ValueError, match=r'l.txt:2: .*single-label.* 2 labels'):
    lists.read_distributed_list(str(tmp_path / 'l.txt'), 3)
  with pytest.raises(ValueError, match=r'l.txt:1: expected a path and 4 labels'):
    lists.read_distributed_list(str(tmp_path / 'l.txt'), 4)


def test_source_reads_both_layouts_alike(built):
  train, extra, queries = fake_subset()
  by_layout = {
    k: {
      s: sources.get_source('imagenet100', data_dir=d, split=s) for s in ('train', 'query')
    }
    for k, d in built.items()
  }
  src = by_layout['archives']
  expected = {n: c for c in CLASSES for n in train[c] + [extra[c]]}
  assert sorted(src['train'].ids) == sorted(expected)
  assert sorted(src['query'].ids) == sorted(n for n, _ in queries)
  assert src['train'].class_names == list(lists.classes())
  for split, truth in (('train', expected), ('query', dict(queries))):
    s = src[split]
    assert s.labels.shape == (len(truth), 100) and s.labels.dtype == np.uint8
    np.testing.assert_array_equal(s.labels.argmax(1), [truth[i] for i in s.ids])
    np.testing.assert_array_equal(s.labels.sum(1), 1)
    other = by_layout['folders'][split]
    assert other.ids == s.ids  # Same records in the same order from either layout.
    for i in range(len(s)):
      img = s.load_image(i)
      assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
      assert min(img.shape[:2]) == 256
      np.testing.assert_array_equal(img, other.load_image(i))


def test_original_config_keeps_sizes_and_converts_odd_files(built):
  train, extra, _ = fake_subset()
  src = sources.get_source(
    'imagenet100', data_dir=built['archives'], split='train', config='original'
  )
  c = CLASSES[0]
  for k, name in enumerate(train[c] + [extra[c]]):
    img = src.load_image(src.ids.index(name))
    with Image.open(io.BytesIO(fake_image(name))) as ref:
      assert img.shape == (ref.height, ref.width, 3), ODD_MODES.get(k)
    if k not in ODD_MODES:  # Original bytes: the very pixels of the file.
      with Image.open(io.BytesIO(fake_image(name))) as ref:
        np.testing.assert_array_equal(img, np.asarray(ref))


def test_source_without_stored_index_scans(built, tmp_path):
  data_dir = str(tmp_path / 'copy')
  shutil.copytree(built['folders'], data_dir)
  path = os.path.join(lists.dataset_dir(data_dir), 'metadata.json')
  os.remove(path)
  src = sources.get_source('imagenet100', data_dir=data_dir, split='train')
  ref = sources.get_source('imagenet100', data_dir=built['folders'], split='train')
  assert src.ids == ref.ids
  np.testing.assert_array_equal(src.labels, ref.labels)


def _config(data_dir):
  config = default.get_config()
  config.unlock()
  config.model.num_classes = 100
  config.data.update(
    source='imagenet100', protocol='imagenet100', data_dir=data_dir, split_seed=0
  )
  return config


def test_protocol_splits_and_saved_splits(built, fake_lists, tmp_path):
  train_names, q_names = fake_lists
  data = input_data.prepare(_config(built['folders']), str(tmp_path))
  pool, splits = data.pool, data.splits
  assert data.protocol.map_topk == 1000
  assert sorted(pool.ids[i] for i in splits['train']) == sorted(train_names)
  assert sorted(pool.ids[i] for i in splits['query']) == sorted(q_names)
  np.testing.assert_array_equal(np.sort(splits['database']), pool.indices_of('train'))
  assert len(splits['database']) == len(CLASSES) * (TRAIN_PER_CLASS + 1)
  assert set(splits['train']) <= set(splits['database'])
  saved = json.loads((tmp_path / protocols.SPLITS_FILE).read_text())
  assert saved['protocol'] == 'imagenet100'
  assert sorted(saved['splits']['train']) == sorted(train_names)
  again = input_data.prepare(_config(built['archives']), str(tmp_path))
  for k in splits:  # The other layout's build reloads the same images.
    assert [again.pool.ids[i] for i in again.splits[k]] == [pool.ids[i] for i in splits[k]]


def test_protocol_names_missing_listed_images(built, fake_lists, monkeypatch):
  train_names, _ = fake_lists
  names = train_names + ('n01514668_1', 'n01514668_2')
  labels = np.repeat(CLASSES, TRAIN_PER_CLASS).tolist() + [0, 0]
  monkeypatch.setattr(lists, 'train_list', lambda: (names, labels))
  with pytest.raises(
    FileNotFoundError,
    match=r'2 of the 11 ImageNet-100 listed training images .* '
    r'n01514668_1, n01514668_2',
  ):
    input_data.prepare(_config(built['folders']), None)


def test_not_prepared_explains(tmp_path):
  with pytest.raises(
    FileNotFoundError,
    match=r'python -m dahjax.data.imagenet100 '
    r'--manual_dir=.*downloads/manual --data_dir=',
  ):
    sources.get_source('imagenet100', data_dir=str(tmp_path), split='train')


def test_missing_manual_files_are_listed(tmp_path, fake_lists):
  del fake_lists
  manual = tmp_path / 'manual'
  os.makedirs(manual)
  with pytest.raises(FileNotFoundError) as e:
    imagenet100.build(str(manual), str(tmp_path / 'data'))
  message = str(e.value)
  for part in (
    f'manual_dir={str(manual)!r}',
    'training images',
    'validation images',
    f'{manual}/ILSVRC2012_img_train.tar',
    f'{manual}/ILSVRC2012_img_val.tar',
    f'{manual}/train/<wnid>/<wnid>_<n>.JPEG',
    f'{manual}/val/ILSVRC2012_val_<n>.JPEG',
  ):
    assert part in message, part
  assert not os.path.exists(tmp_path / 'data' / 'imagenet100')
  # Only the validation images missing.
  os.makedirs(manual / 'train')
  with pytest.raises(FileNotFoundError, match='lacks the validation images'):
    imagenet100.build(str(manual), str(tmp_path / 'data'))


def test_missing_classes_and_queries_are_named(tmp_path, fake_lists):
  _, q_names = fake_lists
  manual = tmp_path / 'manual'
  make_manual_dir(manual, 'folders')
  os.remove(manual / 'val' / lists.classes()[CLASSES[1]] / f'{q_names[2]}.JPEG')
  with pytest.raises(
    FileNotFoundError, match=rf'1 of the 6 .* query images .*{q_names[2]}'
  ):
    imagenet100.build(str(manual), str(tmp_path / 'data'))
  make_manual_dir(tmp_path / 'manual2', 'folders')
  os.rmdir(tmp_path / 'manual2' / 'train' / lists.classes()[99])
  with pytest.raises(
    FileNotFoundError, match=rf'1 of the 100 .* classes .*{lists.classes()[99]}'
  ):
    imagenet100.build(str(tmp_path / 'manual2'), str(tmp_path / 'data'))


def test_cli_reports_missing_copy(tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      '-m',
      'dahjax.data.imagenet100',
      f'--manual_dir={tmp_path}',
      f'--data_dir={tmp_path / "data"}',
    ],
    capture_output=True,
    text=True,
    cwd=REPO,
    check=False,
  )
  assert result.returncode != 0
  assert 'ILSVRC2012_img_train.tar' in result.stderr and str(tmp_path) in result.stderr


@pytest.mark.parametrize(
  'size,expected',
  [
    ((500, 375), (341, 256)),
    ((375, 500), (256, 341)),
    ((100, 60), (426, 256)),
    ((256, 300), (256, 300)),
  ],
)
def test_encode_resizes_like_torchvision(size, expected):
  out = io.BytesIO()
  Image.new('RGB', size, (200, 30, 30)).save(out, format='PNG')
  with Image.open(io.BytesIO(imagenet100.encode(out.getvalue(), 256))) as img:
    assert img.format == 'JPEG' and img.mode == 'RGB' and img.size == expected


def test_headline_config_runs_end_to_end(built, fake_lists, tmp_path):
  """configs/dpfah_imagenet100.py on the fake copy: splits, a few training steps,
  checkpoints and an evaluation at mAP@1000 (sizes cut down to run in seconds)."""
  del fake_lists
  from configs import dpfah_imagenet100  # pylint: disable=g-import-not-at-top
  from dahjax import train  # pylint: disable=g-import-not-at-top
  from dahjax import validation  # pylint: disable=g-import-not-at-top

  config = dpfah_imagenet100.get_config()
  config.unlock()
  config.data.data_dir = built['archives']
  config.model.bits = 8
  config.data.image_size, config.data.resize_size = 48, 56
  config.batch_size, config.num_train_steps = 6, 2
  config.checkpoint_every_steps, config.log_every_steps = 1, 1
  config.eval.batch_size, config.eval.precision_at = 8, 5
  config.data.num_threads = 1
  workdir = str(tmp_path / 'run')
  validation.validate(config, workdir)
  metrics = train.train_and_evaluate(config, workdir)
  assert metrics['protocol'] == 'imagenet100' and metrics['map_topk'] == 1000
  assert metrics['num_queries'] == len(CLASSES) * QUERIES_PER_CLASS
  assert metrics['num_database'] == len(CLASSES) * (TRAIN_PER_CLASS + 1)
  assert 0.0 <= metrics['map'] <= 1.0
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['1', '2']
  assert os.path.exists(os.path.join(workdir, 'eval', 'retrieval_grid.png'))


def test_headline_command_without_data_fails_fast(tmp_path):
  """No ImageNet-100 prepared: the command stops in seconds, before compiling
  anything, and says which files to put where and what to run."""
  import time  # pylint: disable=g-import-not-at-top

  start = time.time()
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'dahjax.main',
      '--config',
      'configs/dpfah_imagenet100.py',
      '--workdir',
      str(tmp_path / 'run'),
      f'--config.data.data_dir={tmp_path / "tfds"}',
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode != 0
  assert 'ILSVRC2012_img_train.tar' in proc.stderr
  assert 'python -m dahjax.data.imagenet100 --manual_dir=' in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert 'Compiling' not in proc.stderr and not os.path.exists(
    tmp_path / 'run' / 'checkpoints'
  )
  assert time.time() - start < 60
