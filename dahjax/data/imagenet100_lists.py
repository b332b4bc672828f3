"""The ImageNet-100 protocol of HashNet, shipped with the package.

HashNet's ImageNet-100 (also used by DeepHash-pytorch and DPFAH) is 100 ILSVRC2012
classes, 130 listed training images per class (13,000) and the 5,000 ILSVRC2012
validation images of those classes as queries; the database is every ILSVRC2012
training image of the 100 classes. The package ships the lists in a compact form under
`dahjax/data/assets/imagenet100/`:

  classes.txt   the 100 WordNet ids; line i is label index i (sorted, as distributed).
  train.txt     `<wnid>_<n> <label index>`, the 13,000 training images.
  query.txt     `ILSVRC2012_val_<n> <label index>`, the 5,000 queries.

Names carry no extension (`.JPEG` in ILSVRC2012). The distributed lists give a 100-long
0/1 vector per image; every vector has exactly one 1, so one label index is lossless.
The shipped files were made from DeepHash-pytorch's lists with

  python -m dahjax.data.imagenet100_lists --src=../shared/data/imagenet100 \
      --dst=dahjax/data/assets/imagenet100

It also holds the identity of the tfds data set that `dahjax.data.imagenet100` builds
and the instructions for building it; it imports neither TensorFlow nor tfds, so
configuration checks stay fast.
"""

import functools
import os

from absl import app
from absl import flags
import numpy as np

ASSETS_DIR = os.path.join(os.path.dirname(__file__), 'assets', 'imagenet100')

# Identity of the tfds data set `dahjax.data.imagenet100` builds; kept here so that
# checks can find a prepared copy without importing tfds.
DATASET_NAME = 'imagenet100'
VERSION = '1.0.0'
CONFIG_NAMES = ('resized256', 'original')
DEFAULT_CONFIG = 'resized256'
SPLITS = ('train', 'query')
TRAIN_TAR = 'ILSVRC2012_img_train.tar'
VAL_TAR = 'ILSVRC2012_img_val.tar'


def dataset_dir(data_dir: str, config: str = DEFAULT_CONFIG) -> str:
  """Where tfds keeps the prepared data set: `<data_dir>/imagenet100/<config>/1.0.0`."""
  return os.path.join(data_dir, DATASET_NAME, config, VERSION)


def default_manual_dir(data_dir: str) -> str:
  """tfds's default manual_dir for a data_dir."""
  return os.path.join(data_dir, 'downloads', 'manual')


def layout_help(manual_dir: str) -> str:
  """The accepted layouts of an ILSVRC2012 copy, with `manual_dir` filled in."""
  m = manual_dir.rstrip('/')
  return (
    'Put your ILSVRC2012 copy there in either layout (they may be mixed per split):\n'
    '  the official archives:\n'
    f'    {m}/{TRAIN_TAR}   (a tar of the per-class tars <wnid>.tar)\n'
    f'    {m}/{VAL_TAR}     (the 50,000 validation JPEGs)\n'
    '  or the extracted folders:\n'
    f'    {m}/train/<wnid>/<wnid>_<n>.JPEG   (or the class tars {m}/train/<wnid>.tar)\n'
    f'    {m}/val/ILSVRC2012_val_<n>.JPEG    (flat, or '
    f'{m}/val/<wnid>/ILSVRC2012_val_<n>.JPEG)\n'
    'Only the 100 ImageNet-100 classes are read (dahjax/data/assets/imagenet100/'
    'classes.txt). The archives come from https://image-net.org/download-images '
    '(registration needed).'
  )


def not_prepared_message(data_dir: str, config: str = DEFAULT_CONFIG) -> str:
  """What to do when ImageNet-100 is not built under `data_dir`."""
  manual_dir = default_manual_dir(data_dir)
  config_flag = '' if config == DEFAULT_CONFIG else f' --config={config}'
  return (
    f'ImageNet-100 ({config}) is not prepared under data_dir={data_dir!r}: '
    f'{os.path.join(dataset_dir(data_dir, config), "dataset_info.json")} does not '
    'exist. Build it once from your own ILSVRC2012 copy (no TensorFlow needed):\n'
    f'  1. Put {TRAIN_TAR} and {VAL_TAR}, or the extracted folders '
    'train/<wnid>/<wnid>_<n>.JPEG and val/ILSVRC2012_val_<n>.JPEG, in '
    f'{manual_dir} (or any folder, given as --manual_dir).\n'
    '  2. Run: python -m dahjax.data.imagenet100 '
    f'--manual_dir={manual_dir} --data_dir={data_dir}{config_flag}\n'
    'If it is already built elsewhere, pass --config.data.data_dir=<the data_dir it '
    'was built into>.'
  )


def check_prepared(data_dir: str, config: str = DEFAULT_CONFIG) -> None:
  """Raises unless ImageNet-100 (`config`) is built under the tfds `data_dir`.

  Raises:
    ValueError: an unknown config.
    FileNotFoundError: not built there; the message says how to build it.
  """
  if config not in CONFIG_NAMES:
    raise ValueError(
      f'Unknown ImageNet-100 config {config!r} (data.imagenet100_config); '
      f'valid configs: {", ".join(CONFIG_NAMES)}.'
    )
  if not os.path.isfile(os.path.join(dataset_dir(data_dir, config), 'dataset_info.json')):
    raise FileNotFoundError(not_prepared_message(data_dir, config))


@functools.cache
def classes() -> tuple[str, ...]:
  """The 100 WordNet ids in label order."""
  with open(os.path.join(ASSETS_DIR, 'classes.txt')) as f:
    names = tuple(line.strip() for line in f if line.strip())
  if len(names) != 100:
    raise ValueError(f'{ASSETS_DIR}/classes.txt holds {len(names)} classes, not 100.')
  return names


def _read_pairs(name: str) -> tuple[tuple[str, ...], np.ndarray]:
  with open(os.path.join(ASSETS_DIR, name)) as f:
    rows = [line.split() for line in f if line.strip()]
  return tuple(r[0] for r in rows), np.array([int(r[1]) for r in rows], np.int64)


@functools.cache
def train_list() -> tuple[tuple[str, ...], np.ndarray]:
  """(image names, label indices) of the 13,000 listed training images, in list order."""
  return _read_pairs('train.txt')


@functools.cache
def query_list() -> tuple[tuple[str, ...], np.ndarray]:
  """(image names, label indices) of the 5,000 query images, in list order."""
  return _read_pairs('query.txt')


def read_distributed_list(path: str, num_classes: int) -> list[tuple[str, int]]:
  """Reads a `dir/<name>.JPEG v_0 ... v_{C-1}` list into (name, label index) pairs.

  Raises:
    ValueError: a line with the wrong number of labels or not exactly one 1.
  """
  pairs = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      path_in_list, *vector = line.split()
      if len(vector) != num_classes or not set(vector) <= {'0', '1'}:
        raise ValueError(
          f'{path}:{number}: expected a path and {num_classes} labels '
          f'0/1, got {len(vector)} values: {line.strip()[:80]!r}.'
        )
      if vector.count('1') != 1:
        raise ValueError(
          f'{path}:{number}: ImageNet-100 is single-label but this '
          f'line has {vector.count("1")} labels set.'
        )
      name = os.path.splitext(os.path.basename(path_in_list))[0]
      pairs.append((name, vector.index('1')))
  return pairs


def convert(src: str, dst: str) -> dict[str, int]:
  """Writes the compact lists to `dst` from DeepHash-pytorch's `classes.txt`,
  `train.txt` and `test.txt` in `src`; returns the number of lines per file."""
  with open(os.path.join(src, 'classes.txt')) as f:
    wnids = [line.strip() for line in f if line.strip()]
  os.makedirs(dst, exist_ok=True)
  counts = {'classes.txt': len(wnids)}
  with open(os.path.join(dst, 'classes.txt'), 'w') as f:
    f.writelines(f'{w}\n' for w in wnids)
  for src_name, dst_name in (('train.txt', 'train.txt'), ('test.txt', 'query.txt')):
    pairs = read_distributed_list(os.path.join(src, src_name), len(wnids))
    if src_name == 'train.txt':
      # A training image's name starts with its class's WordNet id.
      wrong = [n for n, c in pairs if not n.startswith(wnids[c] + '_')]
      if wrong:
        raise ValueError(
          f'{len(wrong)} training images of {src} are labelled with a '
          f'class other than their name says (first: {wrong[0]}).'
        )
    with open(os.path.join(dst, dst_name), 'w') as f:
      f.writelines(f'{name} {label}\n' for name, label in pairs)
    counts[dst_name] = len(pairs)
  return counts


def main(argv):
  del argv
  args = flags.FLAGS
  counts = convert(args.src, args.dst)
  print(f'Wrote {counts} to {args.dst}.')


if __name__ == '__main__':
  # Flags are defined only here, as the training program imports this module.
  flags.DEFINE_string(
    'src',
    '../shared/data/imagenet100',
    "Folder with DeepHash-pytorch's classes.txt, train.txt, test.txt.",
  )
  flags.DEFINE_string('dst', ASSETS_DIR, 'Where to write the compact lists.')
  app.run(main)
