"""Fast checks that a config's data source can be opened, before any run starts.

`check_data(config.data)` looks only at folders, list files and the prepared data set's
info file (a first line of each list file at most), so it takes milliseconds whatever
the size of the data, and it imports neither TensorFlow nor tfds. Each failure says what
was missing and what to do about it.
"""

import os

import ml_collections

from dahjax.data import imagenet100_lists
from dahjax.data import input_data
from dahjax.data import sources


def check_data(data_config: ml_collections.ConfigDict) -> None:
  """Checks that the source named by `data_config` (a config's `data`) can be opened.

  Raises:
    ValueError: an unknown source or protocol, a protocol that does not work with the
      source, or malformed `list_files`.
    FileNotFoundError: a missing folder, list file, image or prepared data set; the
      message says how to provide it.
  """
  cfg = data_config
  sources.source_opener(cfg.source)
  splits, kwargs = input_data.source_args(cfg)  # Also checks the protocol.
  if not cfg.data_dir and cfg.source in _LAYOUTS:
    raise FileNotFoundError(
      f'config.data.data_dir is not set: pass --config.data.data_dir=<folder>, '
      f'{_LAYOUTS[cfg.source]}.'
    )
  data_dir = input_data.resolve_data_dir(cfg.data_dir)
  if cfg.source == 'image_folder':
    _check_image_folder(data_dir, splits)
  elif cfg.source == 'tfds':
    _check_tfds(data_dir, cfg.tfds_name, cfg.tfds_download)
  elif cfg.source == 'imagenet100':
    imagenet100_lists.check_prepared(sources.tfds_data_dir(data_dir), kwargs['config'])
  elif cfg.source == 'list_file':
    _check_list_files(data_dir, kwargs['list_files'], kwargs['class_names_file'])


# What data_dir holds, per source that cannot do without one (tfds and imagenet100 fall
# back to tfds' default data_dir).
_LAYOUTS = {
  'image_folder': f'an image folder: {sources.IMAGE_FOLDER_LAYOUT}',
  'list_file': 'the image root that the list files and their image paths are relative to',
}


def _check_image_folder(data_dir: str, splits) -> None:
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(
      f'data.data_dir {data_dir!r} does not exist. Expected an image folder: '
      f'{sources.IMAGE_FOLDER_LAYOUT}; pass --config.data.data_dir=<that folder>.'
    )
  for split in splits:
    if not os.path.isdir(os.path.join(data_dir, split)):
      raise FileNotFoundError(
        f'The image folder {data_dir!r} has no {split}/ folder, which the protocol '
        f'reads. Expected the layout {sources.IMAGE_FOLDER_LAYOUT}.'
      )


def _check_tfds(data_dir: str, name: str, download: bool) -> None:
  if download:
    return  # tfds will prepare it.
  root = sources.tfds_data_dir(data_dir)
  if not os.path.isdir(os.path.join(root, name.split(':')[0])):
    raise FileNotFoundError(
      f'TFDS data set {name!r} is not prepared under data_dir={root!r}. Build it with '
      f'`tfds build {name} --file_format=array_record --data_dir={root}` where '
      'downloads are possible, set --config.data.tfds_download=True, or pass '
      '--config.data.data_dir=<the data_dir it was built into>.'
    )


def _check_list_files(
  data_dir: str, list_files: dict[str, str], class_names_file: str
) -> None:
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(
      f'data.data_dir {data_dir!r}, the image root that list file paths start from, '
      'does not exist; pass --config.data.data_dir=<that folder>.'
    )
  if class_names_file:
    sources.read_class_names(os.path.join(data_dir, class_names_file))
  paths = {split: os.path.join(data_dir, f) for split, f in list_files.items()}
  missing = [
    f'{p!r} (split {split!r})' for split, p in paths.items() if not os.path.isfile(p)
  ]
  if missing:
    raise FileNotFoundError(
      f'List file{"s" * (len(missing) > 1)} {", ".join(missing)} '
      f'{"do" if len(missing) > 1 else "does"} not exist. '
      f'{sources.LIST_FILES_HELP}'
    )
  for path in paths.values():
    with open(path) as f:
      first = next((line.split() for line in f if line.strip()), None)
    if first is None:
      raise ValueError(f'List file {path!r} holds no images.')
    image = os.path.join(data_dir, first[0])
    if not os.path.isfile(image):
      raise FileNotFoundError(
        f'Image {image!r}, the first in {path}, does not exist. Paths in list files '
        f'are relative to the image root config.data.data_dir={data_dir!r}; point it '
        'at the folder the paths start from.'
      )
