"""Data sources: random-access collections of labelled images.

A source holds one split of a data set. It exposes `ids` (stable string keys, written
to the run's saved splits), `labels` (0/1 uint8 [n, C]), `class_names`, and
`load_image(i)` returning an HWC uint8 RGB array. `get_source(name, ...)` builds one
from the registry and fails with the valid names otherwise.
"""

import os
from typing import Callable, Protocol, Sequence

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')

IMAGE_FOLDER_LAYOUT = ('<root>/<split>/<class name>/<image>.jpg, for example '
                       '<root>/train/airplane/0001.jpg and <root>/test/airplane/0001.jpg')


class Source(Protocol):
  ids: Sequence[str]
  labels: np.ndarray
  class_names: Sequence[str]

  def __len__(self) -> int: ...

  def load_image(self, index: int) -> np.ndarray: ...


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
  return np.eye(num_classes, dtype=np.uint8)[np.asarray(labels)]


def read_image(path: str) -> np.ndarray:
  with Image.open(path) as img:
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
          f'{IMAGE_FOLDER_LAYOUT}. Point --config.data.data_dir at such a folder.')
    self.class_names = sorted(
        c for c in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, c)))
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
          f'the layout {IMAGE_FOLDER_LAYOUT}.')
    self.ids = files
    self.labels = one_hot(np.array(labels), len(self.class_names))

  def __len__(self) -> int:
    return len(self.ids)

  def load_image(self, index: int) -> np.ndarray:
    return read_image(os.path.join(self.root, self.ids[index]))


class TfdsSource:
  """A split of a prepared TFDS data set read through `tfds.data_source` (no TensorFlow).

  The data set must be prepared in array_record format under `data_dir` (`tfds build
  <name> --file_format=array_record`), or `download=True` lets tfds download and
  prepare it where the network allows.
  """

  def __init__(self, name: str, split: str, data_dir: str | None = None,
               image_key: str = 'image', label_key: str = 'label',
               download: bool = False):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir,
                                      download=download)
      info = tfds.builder(name, data_dir=data_dir).info
    except Exception as e:  # tfds raises several types for a missing data set.
      raise FileNotFoundError(
          f'TFDS data set {name!r} (split {split!r}) is not prepared under data_dir='
          f'{data_dir!r}: {e}. Build it with `tfds build {name} '
          '--file_format=array_record --data_dir=<dir>` where downloads are possible '
          '(or set data.tfds_download=True), or use data.source="image_folder" with a '
          'folder of images.') from e
    self._image_key = image_key
    self.class_names = list(info.features[label_key].names)
    self.ids = [f'{name}/{split}/{i}' for i in range(len(self._source))]
    raw = np.array([self._source[i][label_key] for i in range(len(self._source))])
    self.labels = one_hot(raw, len(self.class_names))

  def __len__(self) -> int:
    return len(self.ids)

  def load_image(self, index: int) -> np.ndarray:
    return np.asarray(self._source[index][self._image_key])


_SOURCES: dict[str, Callable[..., Source]] = {
    'image_folder': lambda data_dir, split, **kw: ImageFolderSource(data_dir, split, **kw),
    'tfds': lambda data_dir, split, name='cifar10', **kw: TfdsSource(
        name, split, data_dir or None, **kw),
}


SOURCE_NAMES = tuple(sorted(_SOURCES))


def get_source(name: str, *, data_dir: str, split: str, **kwargs) -> Source:
  """Builds the registered source `name` for `split`; raises listing the valid names."""
  if name not in _SOURCES:
    raise ValueError(f'Unknown data source {name!r}; valid sources: '
                     f'{", ".join(SOURCE_NAMES)}.')
  return _SOURCES[name](data_dir, split, **kwargs)
