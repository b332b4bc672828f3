"""Data sources: random-access collections of labelled images.

A source holds one split of a data set. It exposes `ids` (stable string keys, written
to the run's saved splits), `labels` (0/1 uint8 [n, C]), `class_names`, and
`load_image(i)` returning an HWC uint8 RGB array. `get_source(name, ...)` builds one
from the registry and fails with the valid names otherwise.

Sources (`config.data.source`):

  image_folder  `<data_dir>/<split>/<class>/<image>`, single-label.
  tfds          a prepared tfds data set (`config.data.tfds_name`) read without
                TensorFlow; ids are `<name>/<split>/<index>`.
  imagenet100   ImageNet-100 built by `python -m dahjax.data.imagenet100` into the tfds
                data_dir `config.data.data_dir` (empty: tfds's default); splits 'train'
                and 'query'; ids are file names (`n01440764_10026`).
  list_file     the field's list format, one image a line, multi-label allowed:

                  relative/path/to/image.jpg 0 1 0 0 1 ...

                paths are relative to the image root `config.data.data_dir` and
                followed by C labels 0/1 (a row may have several 1s, or none). One list
                per split, named by `config.data.list_files`, a comma-separated
                `split=path` string such as 'train=train.txt,test=test.txt,
                database=database.txt'; relative list paths are taken from data_dir,
                and an empty string means `<data_dir>/<split>.txt` for every split the
                protocol reads. Class names come from `config.data.class_names_file`
                (one a line, relative to data_dir) or default to class_0..class_{C-1}.
                ids are the paths as written. Whether the images exist is checked for
                the first and last line of each list when the list is read, and for
                every image when it is loaded, so a wrong data_dir fails at once
                without a scan of every file.
"""

from collections.abc import Callable
from collections.abc import Sequence
import os
from typing import Protocol

from absl import logging
import numpy as np
from PIL import Image

from dahjax import registry
from dahjax.data import imagenet100_lists

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')

IMAGE_FOLDER_LAYOUT = (
  '<root>/<split>/<class name>/<image>.jpg, for example '
  '<root>/train/airplane/0001.jpg and <root>/test/airplane/0001.jpg'
)


class Source(Protocol):
  ids: Sequence[str]
  labels: np.ndarray
  class_names: Sequence[str]

  def __len__(self) -> int: ...

  def load_image(self, index: int) -> np.ndarray: ...


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
  return np.eye(num_classes, dtype=np.uint8)[np.asarray(labels)]


def read_image(path: str) -> np.ndarray:
  """An image file as HWC uint8 RGB, whatever its format says it is (a PNG named .jpg
  is read as a PNG): grayscale and CMYK are converted, alpha dropped, and 16-bit and
  32-bit integer images scaled to 8 bits (PIL's own conversion would clip them)."""
  with Image.open(path) as img:
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N'):
      values = np.asarray(img, dtype=np.float64)
      top = 65535.0 if img.mode != 'I' or values.max(initial=0) > 255 else 255.0
      gray = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
      return np.repeat(gray[..., None], 3, axis=-1)
    return np.asarray(img.convert('RGB'))


class ImageFolderSource:
  """`root/<split>/<class>/*.jpg`: one folder per class, classes in sorted order.

  Sorted folder names give CIFAR-10's label order for its usual class names
  (airplane, automobile, ..., truck).
  """

  def __init__(self, root: str, split: str):
    self.root = root
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
      raise FileNotFoundError(
        f'Image folder split {split_dir!r} does not exist. Expected the layout '
        f'{IMAGE_FOLDER_LAYOUT}. Point --config.data.data_dir at such a folder.'
      )
    self.class_names = sorted(
      c for c in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, c))
    )
    files, labels = [], []
    for label, name in enumerate(self.class_names):
      class_dir = os.path.join(split_dir, name)
      for f in sorted(os.listdir(class_dir)):
        if f.lower().endswith(IMAGE_EXTENSIONS):
          files.append(f'{split}/{name}/{f}')
          labels.append(label)
    if not files:
      raise FileNotFoundError(
        f'No images ({", ".join(IMAGE_EXTENSIONS)}) under {split_dir!r}. Expected '
        f'the layout {IMAGE_FOLDER_LAYOUT}.'
      )
    self.ids = files
    self.labels = one_hot(np.array(labels), len(self.class_names))

  def __len__(self) -> int:
    return len(self.ids)

  def path_of(self, index: int) -> str:
    return os.path.join(self.root, self.ids[index])

  def load_image(self, index: int) -> np.ndarray:
    return read_image(self.path_of(index))


class TfdsSource:
  """A split of a prepared TFDS data set read through `tfds.data_source` (no TensorFlow).

  The data set must be prepared in array_record format under `data_dir` (`tfds build
  <name> --file_format=array_record`), or `download=True` lets tfds download and
  prepare it where the network allows.
  """

  def __init__(
    self,
    name: str,
    split: str,
    data_dir: str | None = None,
    image_key: str = 'image',
    label_key: str = 'label',
    download: bool = False,
  ):
    # tfds takes seconds to import: only the sources that read TFDS data import it.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    try:
      self._source = tfds.data_source(
        name, split=split, data_dir=data_dir, download=download
      )
      info = tfds.builder(name, data_dir=data_dir).info
    except Exception as e:  # tfds raises several types for a missing data set.
      raise FileNotFoundError(
        f'TFDS data set {name!r} (split {split!r}) is not prepared under data_dir='
        f'{data_dir!r}: {e}. Build it with `tfds build {name} '
        '--file_format=array_record --data_dir=<dir>` where downloads are possible '
        '(or set data.tfds_download=True), or use data.source="image_folder" with a '
        'folder of images.'
      ) from e
    self._image_key = image_key
    self.class_names = list(info.features[label_key].names)
    self.ids = [f'{name}/{split}/{i}' for i in range(len(self._source))]
    raw = np.array([self._source[i][label_key] for i in range(len(self._source))])
    self.labels = one_hot(raw, len(self.class_names))

  def __len__(self) -> int:
    return len(self.ids)

  def load_image(self, index: int) -> np.ndarray:
    return np.asarray(self._source[index][self._image_key])


def tfds_data_dir(data_dir: str | None) -> str:
  """`data_dir`, or tfds's default ($TFDS_DATA_DIR, else ~/tensorflow_datasets)."""
  if data_dir:
    return data_dir
  return os.path.expanduser(os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets')


class Imagenet100Source:
  """A split ('train' or 'query') of ImageNet-100 built by `dahjax.data.imagenet100`.

  ids are the file names, labels the 100 WordNet ids in the shipped order. Both come
  from the index the build stores in the data set's metadata, so opening a split
  decodes only the two records that check that index, not its 130,000 images.
  """

  def __init__(
    self, data_dir: str | None, split: str, config: str = imagenet100_lists.DEFAULT_CONFIG
  ):
    # tfds (and the builder module, which imports it) take seconds to import: only
    # this source needs them. Importing the builder registers it with tfds.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    from dahjax.data import imagenet100  # pylint: disable=g-import-not-at-top

    if split not in imagenet100_lists.SPLITS:
      raise ValueError(
        f'ImageNet-100 has the splits {imagenet100_lists.SPLITS}, not {split!r}.'
      )
    data_dir = tfds_data_dir(data_dir)
    imagenet100_lists.check_prepared(data_dir, config)
    name = f'{imagenet100_lists.DATASET_NAME}/{config}'
    self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    info = tfds.builder(name, data_dir=data_dir).info
    self.class_names = list(info.features['label'].names)
    metadata = info.metadata or {}
    if split in metadata.get('file_names', {}):
      self.ids = list(metadata['file_names'][split])
      labels = np.array(metadata['labels'][split], np.int64)
    else:
      logging.warning(
        '%s has no index of names and labels; reading all %d records of the %s split once.',
        name,
        len(self._source),
        split,
      )
      self.ids, labels = imagenet100.scan_index(info, split)
    self._check_index(name, split)
    self.labels = one_hot(labels, len(self.class_names))

  def _check_index(self, name: str, split: str):
    """The stored index must describe these records; checked at both ends."""
    ends = {0, len(self._source) - 1}
    if len(self.ids) != len(self._source) or any(
      _text(self._source[i]['file_name']) != self.ids[i] for i in ends
    ):
      raise ValueError(
        f'The index of {name} does not match its {split} split; rebuild '
        'the data set with `python -m dahjax.data.imagenet100`.'
      )

  def __len__(self) -> int:
    return len(self.ids)

  def load_image(self, index: int) -> np.ndarray:
    return np.asarray(self._source[index]['image'])


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


LIST_FILES_HELP = (
  "config.data.list_files names one list per split as 'split=path,...', e.g. "
  "'train=train.txt,test=test.txt,database=database.txt'; relative paths are taken "
  'from data.data_dir, and an empty value means <data_dir>/<split>.txt.'
)


def parse_list_files(spec: str, splits: Sequence[str] | None) -> dict[str, str]:
  """The list file of each split from `config.data.list_files` ('split=path,...').

  Args:
    spec: the config string; empty: `<split>.txt` for each of `splits`.
    splits: the splits the protocol reads; None: every split named in `spec`.

  Returns:
    split -> path as given (relative paths are resolved against data_dir by the source).
  """
  if not spec.strip():
    if splits is None:
      raise ValueError(
        'This protocol pools every list file you name, and '
        'config.data.list_files is empty; set e.g. '
        "--config.data.list_files='all=all_images.txt'. " + LIST_FILES_HELP
      )
    return {s: f'{s}.txt' for s in splits}
  files = {}
  for entry in spec.split(','):
    split, sep, path = (part.strip() for part in entry.partition('='))
    if not sep or not split or not path:
      raise ValueError(
        f'config.data.list_files={spec!r}: {entry.strip()!r} is not '
        f'split=path. {LIST_FILES_HELP}'
      )
    if split in files:
      raise ValueError(f'config.data.list_files={spec!r} names split {split!r} twice.')
    files[split] = path
  if splits is None:
    return files
  missing = [s for s in splits if s not in files]
  if missing:
    raise ValueError(
      f'The protocol reads the splits {list(splits)}, but '
      f'config.data.list_files={spec!r} names no list for '
      f'{", ".join(missing)}. {LIST_FILES_HELP}'
    )
  return {s: files[s] for s in splits}


def read_class_names(path: str) -> list[str]:
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f'Class names file {path!r} (config.data.class_names_file) '
      'does not exist; give one name a line, or leave the field '
      'empty for class_0, class_1, ...'
    )
  with open(path) as f:
    names = [line.strip() for line in f if line.strip()]
  if not names:
    raise ValueError(f'Class names file {path!r} (config.data.class_names_file) is empty.')
  return names


class ListFileSource:
  """One list file `path l_1 ... l_C` per split; multi-label (module docstring)."""

  def __init__(self, data_dir: str, split: str, list_file: str, class_names_file: str = ''):
    self.root = data_dir
    self.list_file = os.path.join(data_dir, list_file)
    if not os.path.isfile(self.list_file):
      raise FileNotFoundError(
        f'List file {self.list_file!r} of split {split!r} does not exist. {LIST_FILES_HELP}'
      )
    class_names = (
      read_class_names(os.path.join(data_dir, class_names_file))
      if class_names_file
      else None
    )
    # The number of labels is fixed by the class names file, else by the first line.
    num_labels = len(class_names) if class_names else None
    expected = f'the {num_labels} classes of {class_names_file}' if class_names else ''
    paths, rows, line_numbers = [], [], []
    with open(self.list_file) as f:
      for number, line in enumerate(f, 1):
        parts = line.split()
        if not parts:
          continue
        if num_labels is None:
          num_labels, expected = len(parts) - 1, f'{len(parts) - 1} as on line {number}'
          if not num_labels:
            raise ValueError(
              f'{self.list_file}:{number}: no labels after the path; '
              'expected `path l_1 ... l_C` with labels 0/1.'
            )
        if len(parts) - 1 != num_labels:
          raise ValueError(
            f'{self.list_file}:{number}: {len(parts) - 1} labels after '
            f'the path, expected {expected}.'
          )
        paths.append(parts[0])
        rows.append(parts[1:])
        line_numbers.append(number)
    if not paths:
      raise ValueError(f'List file {self.list_file!r} holds no images.')
    table = np.array(rows)
    bad = np.flatnonzero(~np.isin(table, ['0', '1']).all(axis=1))
    if len(bad):
      raise ValueError(
        f'{self.list_file}:{line_numbers[bad[0]]}: labels must be 0 or 1, '
        f'got {" ".join(rows[bad[0]])}.'
      )
    self.labels = (table == '1').astype(np.uint8)
    self.class_names = class_names or [f'class_{c}' for c in range(table.shape[1])]
    self.ids = paths
    self._line_numbers = line_numbers
    for i in {0, len(paths) - 1}:
      self._path(i)  # A wrong data_dir fails here, not in the middle of training.

  def _path(self, index: int) -> str:
    path = os.path.join(self.root, self.ids[index])
    if not os.path.isfile(path):
      raise FileNotFoundError(
        f'Image {path!r} (line {self._line_numbers[index]} of {self.list_file}) does '
        'not exist. Paths in list files are relative to the image root '
        f'config.data.data_dir={self.root!r}; point it at the folder the paths start '
        'from.'
      )
    return path

  def __len__(self) -> int:
    return len(self.ids)

  def path_of(self, index: int) -> str:
    path = os.path.join(self.root, self.ids[index])
    return f'{path} (line {self._line_numbers[index]} of {self.list_file})'

  def load_image(self, index: int) -> np.ndarray:
    return read_image(self._path(index))


def _list_file_source(
  data_dir: str, split: str, list_files: dict[str, str], class_names_file: str = ''
) -> ListFileSource:
  if split not in list_files:
    raise ValueError(f'No list file for split {split!r}. {LIST_FILES_HELP}')
  return ListFileSource(data_dir, split, list_files[split], class_names_file)


SOURCES: dict[str, Callable[..., Source]] = {
  'image_folder': lambda data_dir, split, **kw: ImageFolderSource(data_dir, split, **kw),
  'imagenet100': lambda data_dir, split, **kw: Imagenet100Source(
    data_dir or None, split, **kw
  ),
  'list_file': _list_file_source,
  'tfds': lambda data_dir, split, name='cifar10', **kw: TfdsSource(
    name, split, data_dir or None, **kw
  ),
}


def source_opener(name: str) -> Callable[..., Source]:
  """The opener (data_dir, split, **kwargs) -> Source of source `name`; raises listing the
  valid names."""
  return registry.lookup(SOURCES, name, 'data source', 'sources')


def get_source(name: str, *, data_dir: str, split: str, **kwargs) -> Source:
  """Opens split `split` of source `name` under `data_dir`."""
  return source_opener(name)(data_dir, split, **kwargs)
