"""Unreadable images: decoding of awkward files, substitutes in training, exclusion
from evaluation, the 'error' policy, and `python -m dahjax.data.check`."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from dahjax import train
from dahjax import validation
from dahjax.data import bad_images
from dahjax.data import pipeline
from dahjax.data import protocols
from dahjax.data import sources
from tests.parallel_test import ROOT


def _rgb(seed=0, shape=(12, 10, 3)):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def break_images(folder):
  """Breaks 2 training images (truncated JPEG, text named .jpg) and 1 test image (empty
  file) of the tiny folder in place; returns their relative paths."""
  broken = {}
  for split, kind in (('train', 'truncated'), ('train', 'text'), ('test', 'empty')):
    cls = 'bird' if kind == 'text' else 'automobile'
    name = sorted(os.listdir(os.path.join(folder, split, cls)))[1]
    path = os.path.join(folder, split, cls, name)
    if kind == 'truncated':
      data = open(path, 'rb').read()[:300]
    else:
      data = b'' if kind == 'empty' else b'not an image at all\n'
    with open(path, 'wb') as f:
      f.write(data)
    broken[kind] = f'{split}/{cls}/{name}'
  return broken


@pytest.fixture
def broken_folder(tiny_folder, tmp_path):
  folder = str(tmp_path / 'broken')
  shutil.copytree(tiny_folder, folder)
  return folder, break_images(folder)


def test_awkward_but_valid_files_decode_to_rgb(tmp_path):
  rgb = _rgb()
  # A PNG named .jpg is read by its content, losslessly.
  Image.fromarray(rgb).save(tmp_path / 'png.jpg', 'PNG')
  np.testing.assert_array_equal(sources.read_image(str(tmp_path / 'png.jpg')), rgb)
  # Grayscale: the one channel repeated.
  gray = rgb[..., 0]
  Image.fromarray(gray, 'L').save(tmp_path / 'gray.png')
  out = sources.read_image(str(tmp_path / 'gray.png'))
  np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, -1))
  # 16-bit grayscale PNG: scaled to 8 bits, not clipped at 255.
  deep = (np.arange(120, dtype=np.uint16).reshape(12, 10) * 550).astype(np.uint16)
  Image.fromarray(deep).save(tmp_path / 'deep.png')
  out = sources.read_image(str(tmp_path / 'deep.png'))
  assert out.shape == (12, 10, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out[..., 0], np.round(deep / 257.0).astype(np.uint8))
  # CMYK JPEG (ImageNet has one): converted to RGB, close to PIL's own conversion.
  cmyk = Image.fromarray(rgb).convert('CMYK')
  cmyk.save(tmp_path / 'cmyk.jpg', quality=95)
  out = sources.read_image(str(tmp_path / 'cmyk.jpg'))
  assert out.shape == (12, 10, 3) and out.dtype == np.uint8
  assert np.mean(np.abs(out.astype(int) - rgb.astype(int))) < 20
  # RGBA: alpha dropped.
  Image.fromarray(np.dstack([rgb, rgb[..., :1]]), 'RGBA').save(tmp_path / 'alpha.png')
  np.testing.assert_array_equal(sources.read_image(str(tmp_path / 'alpha.png')), rgb)


@pytest.mark.parametrize(
  'content,reason',
  [
    (b'', 'UnidentifiedImageError'),
    (b'GIF89a not really', 'OSError|SyntaxError|UnidentifiedImageError'),
    (b'hello, I am text\n', 'UnidentifiedImageError'),
    ('truncated', 'OSError'),
  ],
)
def test_unreadable_files_give_a_reason(tmp_path, content, reason):
  path = tmp_path / 'x.jpg'
  if content == 'truncated':
    Image.fromarray(_rgb(shape=(64, 64, 3))).save(path, quality=95)
    content = path.read_bytes()[:300]
  path.write_bytes(content)
  os.makedirs(tmp_path / 'root' / 'train' / 'a')
  shutil.copyfile(path, tmp_path / 'root' / 'train' / 'a' / 'x.jpg')
  pool = protocols.build_pool('image_folder', str(tmp_path / 'root'), ('train',))
  image, why = bad_images.try_load(pool, 0)
  assert image is None
  assert why.split(':')[0] in reason.split('|'), why
  assert '\n' not in why


def test_substitutes_keep_the_label_and_come_from_training(broken_folder):
  folder, broken = broken_folder
  pool = protocols.build_pool('image_folder', folder, ('train', 'test'))
  train_idx = pool.indices_of('train')
  loader = bad_images.TrainLoader(pool, train_idx)
  bad = pool.ids.index(broken['truncated'])
  image, used, replaced = loader.load(bad)
  assert replaced == bad and used != bad and used in set(train_idx)
  np.testing.assert_array_equal(pool.labels[used], pool.labels[bad])
  assert used == bad + 1  # The next training image of its class.
  np.testing.assert_array_equal(image, pool.load_image(used))
  # The same substitute from a fresh loader (a resumed run, another process).
  assert bad_images.TrainLoader(pool, train_idx).load(bad)[1] == used
  good = pool.ids.index(
    'train/airplane/' + sorted(os.listdir(f'{folder}/train/airplane'))[0]
  )
  assert loader.load(good)[1:] == (good, -1)
  # The last image of a class wraps round to the first of the same class.
  last_bird = max(i for i in train_idx if pool.labels[i, 2])
  os.truncate(pool.location(last_bird), 0)
  _, used, _ = bad_images.TrainLoader(pool, train_idx).load(last_bird)
  assert used == min(i for i in train_idx if pool.labels[i, 2]) and pool.labels[used, 2]
  with pytest.raises(bad_images.BadImageError, match=broken['truncated']):
    bad_images.TrainLoader(pool, train_idx, 'error').load(bad)


def test_train_batches_with_bad_images_do_not_depend_on_processes(broken_folder, tmp_path):
  folder, broken = broken_folder
  pool = protocols.build_pool('image_folder', folder, ('train', 'test'))
  sampler = pipeline.make_sampler(
    'class_balanced',
    labels=pool.labels,
    indices=pool.indices_of('train'),
    batch_size=6,
    seed=0,
  )
  kw = dict(image_size=32, random_flip=True, seed=0, start_step=0, num_steps=8)
  log = bad_images.BadImageLog(pool, str(tmp_path))
  full = list(pipeline.train_dataset(pool, sampler, bad_image_log=log, **kw))
  assert set(full[0]) == {'image', 'flip', 'label', 'index'}
  # 'index' is the training-split position of the image used (a substitute's own).
  for b in full:
    np.testing.assert_array_equal(pool.labels[sampler.indices[b['index']]], b['label'])
  # 8 steps x 2 per class is 2 epochs of 8 images per class: each bad image twice.
  assert log.replaced == 4
  listed = [l.split('\t')[0] for l in open(tmp_path / bad_images.LIST_FILE)]
  assert sorted(listed) == sorted(
    os.path.join(folder, broken[k]) for k in ('truncated', 'text')
  )
  np.testing.assert_array_equal(
    np.concatenate([b['label'] for b in full]).sum(0), [16, 16, 16]
  )
  halves = [
    list(pipeline.train_dataset(pool, sampler, process_index=p, process_count=2, **kw))
    for p in range(2)
  ]
  for step in range(8):
    for key in ('image', 'flip', 'label', 'index'):
      np.testing.assert_array_equal(
        np.concatenate([halves[0][step][key], halves[1][step][key]]), full[step][key]
      )
  # A resumed run reads the list back: nothing is logged or listed twice.
  again = bad_images.BadImageLog(pool, str(tmp_path))
  list(pipeline.train_dataset(pool, sampler, bad_image_log=again, **kw))
  assert again.replaced == 4 and len(open(tmp_path / bad_images.LIST_FILE).readlines()) == 2
  with pytest.raises(bad_images.BadImageError, match='Cannot read image'):
    list(pipeline.train_dataset(pool, sampler, bad_images='error', **kw))


def test_eval_batches_mark_unreadable_rows(broken_folder):
  folder, broken = broken_folder
  pool = protocols.build_pool('image_folder', folder, ('train', 'test'))
  idx = pool.indices_of('test')
  batches = list(pipeline.eval_batches(pool, idx, batch_size=5, image_size=32))
  readable = np.concatenate([r[:n] for _, n, r in batches])
  expected = np.array([pool.ids[i] != broken['empty'] for i in idx])
  np.testing.assert_array_equal(readable, expected)
  with pytest.raises(bad_images.BadImageError, match=broken['empty']):
    list(pipeline.eval_batches(pool, idx, batch_size=5, image_size=32, bad_images='error'))


def test_unknown_policy_is_refused(tiny_config, tmp_path):
  tiny_config.data.bad_images = 'ignore'
  with pytest.raises(ValueError, match="bad_images='ignore'.*skip, error"):
    validation.validate(tiny_config, str(tmp_path / 'run'))


def test_run_with_bad_images_finishes_and_leaves_them_out(
  broken_folder, tiny_config, tmp_path
):
  folder, broken = broken_folder
  tiny_config.data.data_dir = folder
  tiny_config.num_train_steps = 8  # Two epochs: each bad training image is drawn twice.
  tiny_config.checkpoint_every_steps = 100
  workdir = str(tmp_path / 'run')
  validation.validate(tiny_config, workdir)
  metrics = train.train_and_evaluate(tiny_config, workdir)
  assert metrics['num_queries'] == 11 and metrics['num_unreadable_queries'] == 1
  # The database is the training images (DAH protocol): both bad ones are left out.
  assert metrics['num_database'] == 22 and metrics['num_unreadable_database'] == 2
  assert metrics['unreadable']['queries'] == [os.path.join(folder, broken['empty'])]
  assert sorted(metrics['unreadable']['database']) == sorted(
    os.path.join(folder, broken[k]) for k in ('truncated', 'text')
  )
  saved = json.load(open(os.path.join(workdir, 'eval', 'metrics.json')))
  assert saved['num_unreadable_queries'] == 1
  codes = np.load(os.path.join(workdir, 'eval', 'codes.npz'))
  assert codes['query_codes'].shape == (11, 8)
  lines = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [l['bad_images_replaced'] for l in lines if 'bad_images_replaced' in l][-1] == 4
  assert len(open(os.path.join(workdir, bad_images.LIST_FILE)).readlines()) == 2


def test_error_policy_stops_with_one_line(broken_folder, tiny_folder, tmp_path):
  """Raised in an input worker process, the error reaches the trainer as one line."""
  folder, broken = broken_folder
  from tests.parallel_test import tiny_flags  # pylint: disable=g-import-not-at-top

  proc = subprocess.run(
    [sys.executable, '-m', 'dahjax.main', '--config', 'configs/default.py']
    + ['--workdir', str(tmp_path / 'run')]
    + tiny_flags(folder, 8)
    + ['--config.data.bad_images=error', '--config.data.num_workers=2'],
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS='cpu'),
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('dahjax: Cannot read image ') and 'bad_images=skip' in last
  assert broken['truncated'] in last or broken['text'] in last
  assert 'Traceback' not in proc.stderr


def test_check_lists_every_unreadable_file(broken_folder, tiny_folder):
  folder, broken = broken_folder

  def check(data_dir):
    return subprocess.run(
      [sys.executable, '-m', 'dahjax.data.check', '--config', 'configs/default.py']
      + [f'--config.data.data_dir={data_dir}', '--threads=2'],
      cwd=ROOT,
      env=dict(os.environ, JAX_PLATFORMS='cpu'),
      capture_output=True,
      text=True,
      timeout=300,
    )

  proc = check(folder)
  assert proc.returncode == 1, proc.stderr[-2000:]
  listed = dict(line.split('\t') for line in proc.stdout.splitlines())
  assert sorted(listed) == sorted(os.path.join(folder, p) for p in broken.values())
  assert listed[os.path.join(folder, broken['empty'])].startswith('UnidentifiedImageError')
  assert 'Checked 36 images (splits train, test)' in proc.stderr
  assert '3 unreadable' in proc.stderr
  proc = check(tiny_folder)
  assert proc.returncode == 0 and proc.stdout == ''
  assert 'all readable' in proc.stderr
  proc = check(os.path.join(folder, 'nowhere'))
  assert proc.returncode == 1 and proc.stderr.strip().startswith('dahjax: ')
  assert 'Traceback' not in proc.stderr
