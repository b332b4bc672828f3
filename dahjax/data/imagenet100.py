"""ImageNet-100 as a tfds data set, built from the user's own ILSVRC2012 copy.

ImageNet cannot be downloaded automatically: put your ILSVRC2012 copy in a folder (the
"manual_dir") in either layout, or mix them per split:

  official archives   <manual_dir>/ILSVRC2012_img_train.tar  (a tar of per-class tars
                                                              <wnid>.tar)
                      <manual_dir>/ILSVRC2012_img_val.tar    (the 50,000 JPEGs, flat)
  extracted folders   <manual_dir>/train/<wnid>/<wnid>_<n>.JPEG  (or train/<wnid>.tar)
                      <manual_dir>/val/ILSVRC2012_val_<n>.JPEG   (flat, or
                                   val/<wnid>/ILSVRC2012_val_<n>.JPEG)

and build once (no TensorFlow needed):

  python -m dahjax.data.imagenet100 --manual_dir=<manual_dir> --data_dir=<data_dir>

or call `build(manual_dir, data_dir)`. Only the 100 classes are read. Splits:

  train   every ILSVRC2012 training image of the 100 classes (about 128,500): the
          protocol's database, which also holds the 13,000 listed training images.
  query   the 5,000 listed validation images; their labels come from the shipped query
          list (`imagenet100_lists`), so no devkit is needed.

Features: `image` (JPEG), `label` (ClassLabel over the 100 WordNet ids, in the shipped
order), `file_name` (without extension: `n01440764_10026`, `ILSVRC2012_val_00000007`).

Builder configs: `resized256` (default) stores each image with its shorter side resized
to 256 px (bilinear, as torchvision's `Resize(256)`; smaller images are enlarged too),
re-encoded as JPEG at quality 95. Every DPFAH transform starts with that resize, so this
loses nearly nothing and keeps the data set at roughly 5 GB instead of about 15 GB.
`original` (`--config=original`) keeps the original JPEG bytes; only the few non-RGB
files (grayscale, CMYK, one PNG) are converted to RGB JPEG so every image decodes to
three channels.

Both layouts produce the same records: images are read in sorted order, and tfds
orders the records by a hash of the file name. The build also stores every split's file
names and labels in the data set's `metadata.json`, so a reader gets them without
decoding 130,000 images.
"""

from collections.abc import Iterator
import concurrent.futures
import dataclasses
import io
import os
import sys
import tarfile

from absl import app
from absl import flags
from absl import logging
from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core.data_sources import array_record

from dahjax.data import imagenet100_lists as lists

JPEG_QUALITY = 95
_ENCODE_CHUNK = 256  # Images decoded at once by the thread pool; bounds memory.


@dataclasses.dataclass(frozen=True)
class ManualInputs:
  """Where the training and validation images were found: a folder or an archive."""

  train: str
  train_is_tar: bool
  val: str
  val_is_tar: bool


def find_inputs(manual_dir: str) -> ManualInputs:
  """Locates the training and validation images in `manual_dir`.

  Raises:
    FileNotFoundError: naming what is missing and the accepted layouts.
  """
  found, missing = {}, []
  for split, folder, tar in (
    ('train', 'train', lists.TRAIN_TAR),
    ('val', 'val', lists.VAL_TAR),
  ):
    if os.path.isdir(os.path.join(manual_dir, folder)):
      found[split] = (os.path.join(manual_dir, folder), False)
    elif os.path.isfile(os.path.join(manual_dir, tar)):
      found[split] = (os.path.join(manual_dir, tar), True)
    else:
      missing.append(
        f'{"training" if split == "train" else "validation"} images '
        f'(neither {tar} nor a {folder}/ folder)'
      )
  if missing:
    raise FileNotFoundError(
      f'ImageNet-100 is built from your own ILSVRC2012 copy, looked for in '
      f'manual_dir={manual_dir!r}, which lacks the {" and the ".join(missing)}.\n'
      f'{lists.layout_help(manual_dir)}'
    )
  return ManualInputs(*found['train'], *found['val'])


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
  """Regular files of an archive by base name; reads headers only (seeks past data)."""
  return {os.path.basename(m.name): m for m in tar if m.isfile()}


class _TrainReader:
  """Reads the training images of the 100 classes from a folder or the official tar."""

  def __init__(self, inputs: ManualInputs):
    self._inputs = inputs
    self._outer = None
    if inputs.train_is_tar:
      self._outer = tarfile.open(inputs.train, 'r:')  # Seekable: skips other classes.
      self._class_tars = _members(self._outer)
    self.missing = [w for w in lists.classes() if not self._has(w)]

  def _has(self, wnid: str) -> bool:
    if self._outer is not None:
      return f'{wnid}.tar' in self._class_tars
    base = os.path.join(self._inputs.train, wnid)
    return os.path.isdir(base) or os.path.isfile(base + '.tar')

  def images(self, wnid: str) -> Iterator[tuple[str, bytes]]:
    """(name without extension, file bytes) of one class, in sorted name order."""
    base = os.path.join(self._inputs.train, wnid)
    if self._outer is None and os.path.isdir(base):
      for f in sorted(os.listdir(base)):
        if f.lower().endswith(('.jpeg', '.jpg', '.png')):
          with open(os.path.join(base, f), 'rb') as fh:
            yield os.path.splitext(f)[0], fh.read()
      return
    if self._outer is not None:
      fileobj = self._outer.extractfile(self._class_tars[f'{wnid}.tar'])
    else:
      fileobj = open(base + '.tar', 'rb')  # pylint: disable=consider-using-with
    with fileobj, tarfile.open(fileobj=fileobj, mode='r:') as inner:
      members = _members(inner)
      for f in sorted(members):
        yield os.path.splitext(f)[0], inner.extractfile(members[f]).read()

  def close(self):
    if self._outer is not None:
      self._outer.close()


def _locate_queries(inputs: ManualInputs, names, labels) -> dict[str, object]:
  """Where each listed query image is (path or TarInfo); raises if any is missing."""
  wnids = lists.classes()
  where, missing = {}, []
  if inputs.val_is_tar:
    with tarfile.open(inputs.val, 'r:') as tar:
      members = _members(tar)
    for name in names:
      if f'{name}.JPEG' in members:
        where[name] = members[f'{name}.JPEG']
      else:
        missing.append(name)
  else:
    for name, label in zip(names, labels):
      for path in (
        os.path.join(inputs.val, f'{name}.JPEG'),
        os.path.join(inputs.val, wnids[label], f'{name}.JPEG'),
      ):
        if os.path.isfile(path):
          where[name] = path
          break
      else:
        missing.append(name)
  if missing:
    raise FileNotFoundError(
      f'{len(missing)} of the {len(names)} ImageNet-100 query images are not in '
      f'{inputs.val!r} (first: {", ".join(missing[:5])}). The queries are ILSVRC2012 '
      'validation images; use the complete ILSVRC2012 validation set '
      f'({lists.VAL_TAR} or all of its JPEGs in val/).'
    )
  return where


def encode(data: bytes, shorter_side: int | None) -> bytes:
  """JPEG bytes of an RGB image, its shorter side resized to `shorter_side` if given.

  With `shorter_side=None`, RGB JPEGs are returned unchanged and anything else
  (grayscale, CMYK, PNG) is converted to an RGB JPEG so every image decodes to HxWx3.
  """
  with Image.open(io.BytesIO(data)) as img:
    if shorter_side is None and img.format == 'JPEG' and img.mode == 'RGB':
      return data
    img = img.convert('RGB')
    if shorter_side is not None:
      # torchvision's Resize(256) sizes: the longer side is truncated, not rounded.
      w, h = img.size
      longer = int(shorter_side * max(w, h) / min(w, h))
      size = (shorter_side, longer) if w <= h else (longer, shorter_side)
      if size != (w, h):
        img = img.resize(size, Image.BILINEAR)
    out = io.BytesIO()
    img.save(out, format='JPEG', quality=JPEG_QUALITY)
    return out.getvalue()


def _encode_all(
  items: Iterator[tuple[str, int, bytes]], shorter_side: int | None, workers: int
) -> Iterator[tuple[str, dict]]:
  """tfds (key, example) pairs; images are re-encoded in threads, chunk by chunk."""

  def encode_one(item):
    try:
      return encode(item[2], shorter_side)
    except Exception as e:  # PIL raises several types for a damaged file.
      raise ValueError(
        f'Cannot decode the ILSVRC2012 image {item[0]}: {e}. Replace the '
        'file (or archive) with an intact copy.'
      ) from e

  def flush(chunk):
    encoded = pool.map(encode_one, chunk)
    for (name, label, _), image in zip(chunk, encoded):
      yield name, {'image': image, 'label': label, 'file_name': name}

  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    chunk = []
    for item in items:
      chunk.append(item)
      if len(chunk) == _ENCODE_CHUNK:
        yield from flush(chunk)
        chunk = []
    yield from flush(chunk)


@dataclasses.dataclass
class Imagenet100Config(tfds.core.BuilderConfig):
  shorter_side: int | None = 256  # None: keep the original images.


# Run as `python -m`, this file is also imported under its package name (main() uses
# that copy); registering the builder from both would be a tfds name collision.
class Imagenet100(
  tfds.core.GeneratorBasedBuilder, skip_registration=__name__ == '__main__'
):
  """HashNet's ImageNet-100: the 100 classes' training images and the 5,000 queries."""

  name = lists.DATASET_NAME
  VERSION = tfds.core.Version(lists.VERSION)
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
    Imagenet100Config(
      name='resized256',
      shorter_side=256,
      description='Shorter side resized to 256 px, JPEG quality 95.',
    ),
    Imagenet100Config(
      name='original', shorter_side=None, description='The original ILSVRC2012 JPEGs.'
    ),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = lists.DEFAULT_CONFIG
  MANUAL_DOWNLOAD_INSTRUCTIONS = lists.layout_help('<manual_dir>')
  # tfds derives this through the `importlib_resources` backport for a builder inside
  # a package, and that backport is not among our requirements.
  code_path = epath.Path(__file__)
  workers = os.cpu_count() or 1

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=__doc__.split('\n\n', maxsplit=1)[0],
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Image(shape=(None, None, 3), encoding_format='jpeg'),
          'label': tfds.features.ClassLabel(names=lists.classes()),
          'file_name': tfds.features.Text(),
        }
      ),
      supervised_keys=('image', 'label'),
      homepage='https://image-net.org/',
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    # The path itself: the public `manual_dir` property fails on a missing folder with
    # tfds' own message, which does not list the accepted layouts as ours does.
    manual_dir = os.fspath(dl_manager._manual_dir)  # pylint: disable=protected-access
    inputs = find_inputs(manual_dir)
    query_names, query_labels = lists.query_list()
    queries = _locate_queries(inputs, query_names, query_labels)
    train = _TrainReader(inputs)
    if train.missing:
      train.close()
      raise FileNotFoundError(
        f'{len(train.missing)} of the 100 ImageNet-100 classes are missing from '
        f'{inputs.train!r}: {", ".join(train.missing[:10])}'
        f'{" ..." if len(train.missing) > 10 else ""}.\n'
        f'{lists.layout_help(manual_dir)}'
      )
    return {
      'query': self._generate_examples(
        items=self._query_items(inputs, queries, query_names, query_labels)
      ),
      'train': self._generate_examples(items=self._train_items(train)),
    }

  def _query_items(self, inputs, queries, names, labels):
    order = sorted(range(len(names)), key=names.__getitem__)
    if inputs.val_is_tar:
      with tarfile.open(inputs.val, 'r:') as tar:
        for i in order:
          yield names[i], int(labels[i]), tar.extractfile(queries[names[i]]).read()
    else:
      for i in order:
        with open(queries[names[i]], 'rb') as f:
          yield names[i], int(labels[i]), f.read()

  def _train_items(self, train: _TrainReader):
    listed = set(lists.train_list()[0])
    found = 0
    try:
      for label, wnid in enumerate(lists.classes()):
        for name, data in train.images(wnid):
          found += name in listed
          yield name, label, data
    finally:
      train.close()
    if found < len(listed):
      # The database is whatever the copy holds; the protocol refuses to run without
      # all listed training images, and says which are missing.
      logging.warning(
        'Only %d of the %d listed ImageNet-100 training images were found.',
        found,
        len(listed),
      )

  def _generate_examples(self, items):
    yield from _encode_all(items, self.builder_config.shorter_side, self.workers)

  def _download_and_prepare(self, dl_manager, download_config, **kwargs):
    super()._download_and_prepare(dl_manager, download_config, **kwargs)
    # tfds orders records by a hash of their key; read the written records back once
    # (images left encoded) so readers get every split's names and labels at once.
    metadata = self.info.metadata
    metadata['file_names'], metadata['labels'] = {}, {}
    for split in self.info.splits:
      names, labels = scan_index(self.info, split)
      metadata['file_names'][split] = names
      metadata['labels'][split] = labels.tolist()


def scan_index(
  info: tfds.core.DatasetInfo, split: str, batch: int = 1024
) -> tuple[list[str], np.ndarray]:
  """(file names, label indices) of a split in record order, without decoding images."""
  source = array_record.ArrayRecordDataSource(
    info, split, decoders={'image': tfds.decode.SkipDecoding()}
  )
  names, labels = [], []
  for start in range(0, len(source), batch):
    for record in source.__getitems__(range(start, min(start + batch, len(source)))):
      name = record['file_name']
      names.append(name.decode() if isinstance(name, bytes) else str(name))
      labels.append(int(record['label']))
  return names, np.array(labels, np.int64)


def build(
  manual_dir: str | None,
  data_dir: str,
  config: str = lists.DEFAULT_CONFIG,
  workers: int | None = None,
) -> str:
  """Builds ImageNet-100 into `data_dir` from the ILSVRC2012 copy in `manual_dir`.

  Args:
    manual_dir: folder with the ILSVRC2012 archives or extracted folders (module
      docstring); None: tfds's default, `<data_dir>/downloads/manual`.
    data_dir: the tfds data_dir to write to (then `--config.data.data_dir`).
    config: 'resized256' (shorter side 256 px) or 'original'.
    workers: threads that decode and re-encode images; default: all cores.

  Returns:
    The prepared data set's directory. An already prepared data set is kept as is.
  """
  data_dir = os.path.abspath(os.path.expanduser(data_dir))
  manual_dir = os.path.abspath(
    os.path.expanduser(manual_dir or lists.default_manual_dir(data_dir))
  )
  if config not in lists.CONFIG_NAMES:
    raise ValueError(
      f'Unknown ImageNet-100 config {config!r}; valid configs: '
      f'{", ".join(lists.CONFIG_NAMES)}.'
    )
  builder = Imagenet100(data_dir=data_dir, config=config, file_format='array_record')
  if workers:
    builder.workers = workers
  if not builder.is_prepared():
    find_inputs(manual_dir)  # Fails before tfds creates anything.
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, compute_stats=tfds.download.ComputeStatsMode.SKIP
      )
    )
  return os.fspath(builder.data_dir)


def _define_flags():
  flags.DEFINE_string(
    'manual_dir',
    None,
    'Folder with your ILSVRC2012 copy (archives or '
    'extracted train/ and val/); default: <data_dir>/downloads/manual.',
  )
  flags.DEFINE_string('data_dir', None, 'tfds data_dir to write to.', required=True)
  flags.DEFINE_enum(
    'config',
    lists.DEFAULT_CONFIG,
    lists.CONFIG_NAMES,
    'resized256: shorter side 256 px; original: the files as they are.',
  )
  flags.DEFINE_integer('workers', None, 'Image encoding threads; default: all cores.')


def main(argv):
  del argv
  args = flags.FLAGS
  # The package's copy of this module, whose builder is the registered one.
  from dahjax.data import imagenet100  # pylint: disable=g-import-not-at-top,import-self

  try:
    path = imagenet100.build(args.manual_dir, args.data_dir, args.config, args.workers)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'Error: {e}')  # The message says what to do; a traceback would bury it.
  print(
    f'ImageNet-100 is ready in {path}. Train with '
    f'--config.data.data_dir={os.path.abspath(os.path.expanduser(args.data_dir))}'
  )


if __name__ == '__main__':
  # Flags are defined only here: the training program imports this module and has a
  # --config flag of its own.
  _define_flags()
  app.run(main)
