"""Tests of the data checks run before training: fast, each message saying what to do."""

import os
import subprocess
import sys
import time

import ml_collections
import pytest

from configs import default
from dahjax.data import checks
from dahjax.data import imagenet100_lists


def _data(**fields) -> ml_collections.ConfigDict:
  """A config's `data`, from the default config, with `fields` changed or added."""
  data = default.get_config().data
  data.unlock()
  data.update(fields)
  return data


def test_default_and_image_folder(tiny_folder, tmp_path):
  checks.check_data(_data(data_dir=tiny_folder))
  with pytest.raises(FileNotFoundError, match=r'nowhere.* does not exist.*<root>/<split>'):
    checks.check_data(_data(data_dir=str(tmp_path / 'nowhere')))
  os.makedirs(tmp_path / 'train')
  with pytest.raises(FileNotFoundError, match='has no test/ folder'):
    checks.check_data(_data(data_dir=str(tmp_path)))


def test_empty_data_dir_says_which_flag_to_pass():
  with pytest.raises(FileNotFoundError, match=r'data_dir is not set.*image folder'):
    checks.check_data(_data(data_dir=''))
  with pytest.raises(FileNotFoundError, match=r'data_dir is not set.*list files'):
    checks.check_data(_data(data_dir='', source='list_file', protocol='lists'))


def test_imagenet100_not_prepared_says_what_to_do(tmp_path):
  data = _data(source='imagenet100', protocol='imagenet100', data_dir=str(tmp_path))
  start = time.perf_counter()
  with pytest.raises(FileNotFoundError) as e:
    checks.check_data(data)
  assert time.perf_counter() - start < 0.5
  message = str(e.value)
  manual = os.path.join(str(tmp_path), 'downloads', 'manual')
  for part in (
    f'not prepared under data_dir={str(tmp_path)!r}',
    'ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar',
    f'in {manual} (or any folder',
    f'python -m dahjax.data.imagenet100 --manual_dir={manual} --data_dir={tmp_path}\n',
    '--config.data.data_dir=',
  ):
    assert part in message, part
  data.imagenet100_config = 'original'
  with pytest.raises(FileNotFoundError, match=r'--data_dir=\S+ --config=original'):
    checks.check_data(data)
  data.imagenet100_config = 'small'
  with pytest.raises(ValueError, match='resized256, original'):
    checks.check_data(data)
  # A prepared data set is recognised by its info file alone.
  info_dir = imagenet100_lists.dataset_dir(str(tmp_path), 'resized256')
  os.makedirs(info_dir)
  open(os.path.join(info_dir, 'dataset_info.json'), 'w').close()
  data.imagenet100_config = 'resized256'
  checks.check_data(data)


def test_imagenet100_default_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tfds'))
  with pytest.raises(FileNotFoundError, match=rf"data_dir='{tmp_path}/tfds'"):
    checks.check_data(_data(source='imagenet100', protocol='imagenet100', data_dir=''))


def test_protocol_and_source_must_fit(tiny_folder):
  with pytest.raises(ValueError, match='--config.data.source=imagenet100'):
    checks.check_data(_data(data_dir=tiny_folder, protocol='imagenet100'))
  with pytest.raises(ValueError, match='Unknown data source'):
    checks.check_data(_data(source='folder'))
  with pytest.raises(ValueError, match='Unknown protocol'):
    checks.check_data(_data(protocol='nope'))


def test_list_files(tmp_path):
  os.makedirs(tmp_path / 'img')
  (tmp_path / 'img' / 'a.jpg').write_bytes(b'')
  (tmp_path / 'train.txt').write_text('img/a.jpg 0 1\n')
  (tmp_path / 'test.txt').write_text('\nimg/b.jpg 1 0\n')
  data = _data(source='list_file', protocol='lists', data_dir=str(tmp_path))
  with pytest.raises(
    FileNotFoundError,
    match=r"List file .*database.txt' \(split "
    r"'database'\) does not exist.*split=path",
  ):
    checks.check_data(data)
  (tmp_path / 'database.txt').write_text('img/a.jpg 0 1\n')
  with pytest.raises(
    FileNotFoundError,
    match=r"img/b.jpg', the first in .*test.txt, "
    'does not exist.*relative to the image root',
  ):
    checks.check_data(data)
  (tmp_path / 'img' / 'b.jpg').write_bytes(b'')
  checks.check_data(data)
  data.class_names_file = 'names.txt'
  with pytest.raises(FileNotFoundError, match='Class names file'):
    checks.check_data(data)
  data.class_names_file = ''
  data.list_files = 'train=train.txt'
  with pytest.raises(ValueError, match='names no list for test, database'):
    checks.check_data(data)
  data.update(protocol='nuswide21', list_files='')
  with pytest.raises(ValueError, match='pools every list file'):
    checks.check_data(data)
  data.list_files = 'all=database.txt'
  checks.check_data(data)
  data.data_dir = str(tmp_path / 'nowhere')
  with pytest.raises(FileNotFoundError, match='image root .* does not exist'):
    checks.check_data(data)


def test_tfds_not_prepared(tmp_path):
  with pytest.raises(
    FileNotFoundError,
    match=r'tfds build cifar10 '
    rf'--file_format=array_record --data_dir={tmp_path}',
  ):
    checks.check_data(_data(source='tfds', protocol='dah_cifar10', data_dir=str(tmp_path)))
  checks.check_data(
    _data(source='tfds', protocol='dah_cifar10', data_dir=str(tmp_path), tfds_download=True)
  )


def test_checks_import_neither_tensorflow_nor_tfds():
  code = (
    'import sys; import dahjax.data.checks; '
    "assert not {'tensorflow', 'tensorflow_datasets'} & set(sys.modules)"
  )
  subprocess.run(
    [sys.executable, '-c', code],
    check=True,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )
