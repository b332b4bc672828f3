"""Index a folder of your own images with a trained model.

  python -m dahjax.index --workdir W --images DIR [--output INDEX] [--checkpoint_step S]

encodes every image under DIR (recursively: .jpg, .jpeg, .png, .webp) with the model of
workdir W (its latest checkpoint, or step S) and its evaluation transform, with the same
jitted, sharded encoder as evaluation, and writes an index directory (default
`W/index`) that `dahjax.search` and `dahjax.serve` read. The index is self-contained:
it holds the model's variables and config, so it can be copied to another machine and
queried without the workdir.

Run again on the same DIR, it hashes the files (content hash, SHA-256; a file whose
size and modification time are unchanged is not read again), encodes only the new and
changed ones and drops the deleted ones. A new model (another checkpoint or workdir)
encodes every file again. An unreadable file is listed with the reason and skipped,
never fatal.

Layout of INDEX (a new version is written beside the old one and `index.json` replaced
last, so a reader or an interrupted run never sees half an index):

  index.json             format, version, the model (workdir, step, method, bits,
                         transform, a fingerprint of its variables), the image root,
                         the counts, the unreadable files and the current data folder
  data-<id>/config.json  the model's config
  data-<id>/variables.msgpack  its parameters and BatchNorm statistics
  data-<id>/codes.npz    a `dahjax.hash_index.HammingIndex` of the codes (packed codes
                         and the multi-index-hashing tables); item i is file i
  data-<id>/files.npz    per item: relative path (sorted order), SHA-256, size,
                         modification time, and its thumbnail's offsets
  data-<id>/thumbnails.bin  JPEG thumbnails (at most 160 px a side), concatenated
"""

import dataclasses
import datetime
import functools
import hashlib
import io
import json
import os
import shutil
import sys
import threading
import time
from typing import Any
import uuid

from absl import app
from absl import flags
from absl import logging
from flax import serialization
import jax
import ml_collections
import numpy as np
from PIL import Image

from dahjax import atomic
from dahjax import checkpoints
from dahjax import cli
from dahjax import encode
from dahjax import evaluate
from dahjax import hash_index
from dahjax import losses
from dahjax import parallel
from dahjax import state as state_lib
from dahjax.data import bad_images as bad_images_lib
from dahjax.data import pipeline
from dahjax.data import sources

FORMAT = 'dahjax.ImageIndex'
VERSION = 1
MANIFEST = 'index.json'
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp')
THUMBNAIL_SIZE = 160

_CONFIG_FILE = 'config.json'
_VARIABLES_FILE = 'variables.msgpack'
_CODES_FILE = 'codes.npz'
_FILES_FILE = 'files.npz'
_THUMBNAILS_FILE = 'thumbnails.bin'


@dataclasses.dataclass
class Model:
  """A trained model frozen for encoding: its config, variables and where it came from."""

  config: ml_collections.ConfigDict
  variables: dict[str, Any]
  step: int
  workdir: str
  _encoder: Any = dataclasses.field(default=None, repr=False)

  @property
  def bits(self) -> int:
    return int(self.config.model.bits)

  @property
  def method(self) -> str:
    config = self.config
    return evaluate.method_name(
      config.model_name,
      config.model.attention,
      loss_name=config.loss_name,
      loss=losses.loss_kwargs(config.loss_name, config.loss),
    )

  @functools.cached_property
  def serialized(self) -> bytes:
    """The variables as msgpack (computed once: the variables never change)."""
    return serialization.msgpack_serialize(jax.tree.map(np.asarray, self.variables))

  @functools.cached_property
  def fingerprint(self) -> str:
    """SHA-256 of the serialized variables: equal for the same weights."""
    return hashlib.sha256(self.serialized).hexdigest()

  def describe(self) -> dict[str, Any]:
    data = self.config.data
    return {
      'workdir': self.workdir,
      'checkpoint_step': self.step,
      'model': self.config.model_name,
      'method': self.method,
      'bits': self.bits,
      'transform': data.transform,
      'image_size': int(data.image_size),
      'resize_size': int(data.resize_size),
      'fingerprint': self.fingerprint,
    }

  def prepare(self, image: np.ndarray) -> np.ndarray:
    """A decoded uint8 HWC image as the model's evaluation input (uint8, square)."""
    data = self.config.data
    return pipeline.eval_transform(
      image,
      transform=data.transform,
      image_size=data.image_size,
      resize_size=data.resize_size,
    )

  def encoder(self):
    """(jitted encoder, variables on the mesh), built once."""
    if self._encoder is None:
      mesh = parallel.create_mesh()
      variables = jax.device_put(self.variables, parallel.replicated(mesh))
      model = state_lib.create_model(self.config)
      chunk = encode.encode_chunk_size(self.config.eval.chunk_size)
      self._encoder = (encode.make_encoder(model, mesh, chunk), variables)
    return self._encoder

  def encode(self, images: np.ndarray, pad_to: int = 1) -> np.ndarray:
    """0/1 uint8 codes [n, bits] of n >= 1 prepared images [n, size, size, 3] (uint8).

    The batch is padded, by repeating its last image, to at least `pad_to` rows and to a
    multiple of the devices; the encoder compiles once per padded size.
    """
    encoder, variables = self.encoder()
    n = len(images)
    unit = jax.device_count()
    padded = -(-max(n, pad_to) // unit) * unit
    if padded != n:
      images = np.concatenate([images, np.repeat(images[-1:], padded - n, 0)])
    return np.asarray(encoder(variables, images))[:n]


def load_model(workdir: str, checkpoint_step: int | None = None) -> Model:
  """The model of a training workdir at its latest checkpoint (or `checkpoint_step`).

  Raises:
    FileNotFoundError: no such workdir, no config.json in it, or no checkpoint (of that
      step); the message says what to do.
  """
  config_path = os.path.join(workdir, checkpoints.CONFIG_FILE)
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f'--workdir {workdir} does not exist.')
  if not os.path.isfile(config_path):
    raise FileNotFoundError(
      f'{workdir} has no {checkpoints.CONFIG_FILE}: it is not a dahjax training workdir. '
      'Train one with python -m dahjax.main --config <config> --workdir <dir>.'
    )
  config = checkpoints.read_config(config_path)
  model = state_lib.create_model(config)
  state = state_lib.restore_for_eval(config, workdir, model, checkpoint_step)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  return Model(
    config, jax.tree.map(np.asarray, variables), int(state.step), os.path.abspath(workdir)
  )


def scan_images(root: str, exclude: str | None = None) -> list[str]:
  """Relative paths ('/'-separated) of every image under `root`, sorted; hidden files
  and folders and the folder `exclude` (an index inside the collection) left out."""
  exclude = os.path.realpath(exclude) if exclude else None
  found = []
  for folder, dirs, files in os.walk(root):
    dirs[:] = sorted(
      d
      for d in dirs
      if not d.startswith('.') and os.path.realpath(os.path.join(folder, d)) != exclude
    )
    for name in files:
      if not name.startswith('.') and name.lower().endswith(IMAGE_EXTENSIONS):
        found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, '/'))
  return sorted(found)


def file_hash(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()


def thumbnail(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> bytes:
  """A JPEG of `image` (uint8 HWC) at most `size` pixels a side."""
  img = Image.fromarray(image)
  img.thumbnail((size, size), Image.BILINEAR)
  out = io.BytesIO()
  img.save(out, format='JPEG', quality=85)
  return out.getvalue()


class _Files:
  """Image files seen as a data pool for `encode.encode_split`: each load also keeps the
  image's thumbnail, and a failure's reason (the pool is read by threads)."""

  def __init__(self, root: str, paths: list[str]):
    self.root, self.paths = root, paths
    self.thumbnails: dict[int, bytes] = {}
    self.reasons: dict[int, str] = {}
    self._lock = threading.Lock()

  def location(self, index: int) -> str:
    return os.path.join(self.root, self.paths[index])

  def load_image(self, index: int) -> np.ndarray:
    try:
      image = sources.read_image(self.location(index))
      thumb = thumbnail(image)
    except Exception as e:  # pylint: disable=broad-except
      with self._lock:
        self.reasons[index] = bad_images_lib.describe(e)
      raise
    with self._lock:
      self.thumbnails[index] = thumb
    return image


def encode_files(
  model: Model, root: str, paths: list[str], *, num_threads: int = 4
) -> tuple[np.ndarray, np.ndarray, list[bytes | None], dict[int, str]]:
  """Codes [n, bits], readable [n] bool, thumbnails (None where unreadable) and the
  reason of each unreadable file, by position in `paths`."""
  if not paths:
    return np.zeros((0, model.bits), np.uint8), np.zeros(0, bool), [], {}
  files = _Files(root, paths)
  encoder, variables = model.encoder()
  settings = evaluate.encode_settings(model.config)
  settings['num_threads'] = num_threads
  settings['num_workers'] = 0  # The thumbnails are kept by this process's threads.
  codes, readable, _ = encode.encode_split(
    encoder,
    variables,
    files,
    np.arange(len(paths)),
    name='images',
    **settings,
  )
  reasons = {
    i: files.reasons.get(i, 'could not be preprocessed') for i in np.flatnonzero(~readable)
  }
  thumbs = [files.thumbnails.get(i) if readable[i] else None for i in range(len(paths))]
  return np.asarray(codes, np.uint8), readable, thumbs, reasons


@dataclasses.dataclass
class Contents:
  """What an index holds, in memory: item i is `paths[i]`."""

  manifest: dict[str, Any]
  codes: np.ndarray  # 0/1 uint8 [n, bits]
  paths: list[str]
  sha256: list[str]
  sizes: np.ndarray  # int64 [n]
  mtimes: np.ndarray  # int64 [n], nanoseconds
  thumbnails: list[bytes]
  hamming: hash_index.HammingIndex | None = None


def _data_dir(index_dir: str, manifest: dict[str, Any]) -> str:
  return os.path.join(index_dir, manifest['data'])


def read_manifest(index_dir: str) -> dict[str, Any]:
  """The index's `index.json`, checked.

  Raises:
    FileNotFoundError: no index there (the message gives the command that makes one).
    ValueError: a file that is not a dahjax image index of this version.
  """
  path = os.path.join(index_dir, MANIFEST)
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f'No image index at {index_dir} (no {MANIFEST}). Make one with: '
      'python -m dahjax.index --workdir <workdir> --images <folder> '
      f'--output {index_dir}'
    )
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'{path} is not readable JSON ({e}); index the images again.') from e
  if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
    raise ValueError(f'{path} is not a {FORMAT} manifest; index the images again.')
  if manifest.get('version') != VERSION:
    raise ValueError(
      f'{path} is format version {manifest.get("version")}; this dahjax reads version '
      f'{VERSION}. Index the images again.'
    )
  return manifest


def read_model(index_dir: str, manifest: dict[str, Any] | None = None) -> Model:
  """The model an index was made with, from the index alone."""
  manifest = manifest or read_manifest(index_dir)
  data = _data_dir(index_dir, manifest)
  config = checkpoints.read_config(os.path.join(data, _CONFIG_FILE))
  with open(os.path.join(data, _VARIABLES_FILE), 'rb') as f:
    variables = serialization.msgpack_restore(f.read())
  info = manifest['model']
  return Model(config, variables, int(info['checkpoint_step']), info['workdir'])


def read_contents(index_dir: str, manifest: dict[str, Any] | None = None) -> Contents:
  """Everything an index holds but its model."""
  manifest = manifest or read_manifest(index_dir)
  data = _data_dir(index_dir, manifest)
  try:
    hamming = hash_index.HammingIndex.load(os.path.join(data, _CODES_FILE))
    with np.load(os.path.join(data, _FILES_FILE), allow_pickle=False) as f:
      files = {k: f[k] for k in f.files}
    with open(os.path.join(data, _THUMBNAILS_FILE), 'rb') as f:
      blob = f.read()
  except (OSError, ValueError, KeyError) as e:
    raise ValueError(
      f'The index at {index_dir} is damaged ({type(e).__name__}: {e}); index the '
      'images again.'
    ) from e
  offsets = files['thumbnail_offsets']
  n = len(files['paths'])
  if len(hamming) != n or len(offsets) != n + 1 or offsets[-1] != len(blob):
    raise ValueError(
      f'The index at {index_dir} is inconsistent (codes, files and thumbnails do not '
      'match); index the images again.'
    )
  return Contents(
    manifest=manifest,
    codes=hamming.codes(),
    paths=[str(p) for p in files['paths']],
    sha256=[str(h) for h in files['sha256']],
    sizes=files['sizes'],
    mtimes=files['mtimes'],
    thumbnails=[blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])],
    hamming=hamming,
  )


def write_index(
  index_dir: str, model: Model, contents: Contents, manifest: dict[str, Any]
) -> None:
  """Writes a new data folder, then `index.json` pointing at it, then removes the old
  data folders: an interrupted write leaves the previous index whole."""
  os.makedirs(index_dir, exist_ok=True)
  name = f'data-{uuid.uuid4().hex[:12]}'
  data = os.path.join(index_dir, name)
  os.makedirs(data)
  with open(os.path.join(data, _CONFIG_FILE), 'w') as f:
    f.write(model.config.to_json(indent=2))
  with open(os.path.join(data, _VARIABLES_FILE), 'wb') as f:
    f.write(model.serialized)
  hash_index.HammingIndex(contents.codes).save(os.path.join(data, _CODES_FILE))
  offsets = np.concatenate([[0], np.cumsum([len(t) for t in contents.thumbnails])])
  np.savez(
    os.path.join(data, _FILES_FILE),
    paths=np.array(contents.paths, dtype=str),
    sha256=np.array(contents.sha256, dtype=str),
    sizes=np.asarray(contents.sizes, np.int64),
    mtimes=np.asarray(contents.mtimes, np.int64),
    thumbnail_offsets=offsets.astype(np.int64),
  )
  with open(os.path.join(data, _THUMBNAILS_FILE), 'wb') as f:
    for t in contents.thumbnails:
      f.write(t)
  atomic.write_json(os.path.join(index_dir, MANIFEST), {**manifest, 'data': name}, indent=2)
  for other in os.listdir(index_dir):
    if other.startswith('data-') and other != name:
      shutil.rmtree(os.path.join(index_dir, other), ignore_errors=True)


def _previous(index_dir: str, model: Model) -> Contents | None:
  """The index already at `index_dir` when it was made with the same model."""
  if not os.path.exists(os.path.join(index_dir, MANIFEST)):
    return None
  try:
    contents = read_contents(index_dir)
  except (FileNotFoundError, ValueError) as e:
    logging.warning('Encoding every image again: %s', e)
    return None
  if contents.manifest['model']['fingerprint'] != model.fingerprint:
    old = contents.manifest['model']
    logging.warning(
      'The index at %s was made with another model (%s, step %s); encoding every '
      'image again with %s, step %d.',
      index_dir,
      old.get('workdir'),
      old.get('checkpoint_step'),
      model.workdir,
      model.step,
    )
    return None
  return contents


def build_index(
  model: Model, images_dir: str, index_dir: str, *, num_threads: int = 4
) -> dict[str, Any]:
  """Encodes the images under `images_dir` into `index_dir`, only the new and changed
  ones when an index of the same model is there. Returns the summary (counts, the
  unreadable files) also written to index.json.

  Raises:
    FileNotFoundError: `images_dir` is not a folder, or holds no readable image.
  """
  if not os.path.isdir(images_dir):
    raise FileNotFoundError(f'--images {images_dir} is not a folder.')
  start = time.monotonic()
  paths = scan_images(images_dir, exclude=index_dir)
  if not paths:
    raise FileNotFoundError(
      f'No images ({", ".join(IMAGE_EXTENSIONS)}) under {images_dir}.'
    )
  old = _previous(index_dir, model)
  old_at = {p: i for i, p in enumerate(old.paths)} if old else {}
  stats = [os.stat(os.path.join(images_dir, p)) for p in paths]
  sizes = np.array([s.st_size for s in stats], np.int64)
  mtimes = np.array([s.st_mtime_ns for s in stats], np.int64)
  digests, reuse = [], []
  for i, p in enumerate(paths):
    j = old_at.get(p)
    if j is not None and old.sizes[j] == sizes[i] and old.mtimes[j] == mtimes[i]:
      digests.append(old.sha256[j])  # Unchanged size and time: not read again.
    else:
      digests.append(file_hash(os.path.join(images_dir, p)))
    reuse.append(j is not None and old.sha256[j] == digests[i])
  todo = [i for i in range(len(paths)) if not reuse[i]]
  logging.info(
    'Indexing %s: %d images, %d to encode (%d unchanged).',
    images_dir,
    len(paths),
    len(todo),
    len(paths) - len(todo),
  )
  new_codes, readable, thumbs, reasons = encode_files(
    model, images_dir, [paths[i] for i in todo], num_threads=num_threads
  )
  encoded = {i: k for k, i in enumerate(todo)}
  keep, codes, thumbnails = [], [], []
  for i in range(len(paths)):
    if i in encoded:
      k = encoded[i]
      if not readable[k]:
        continue
      codes.append(new_codes[k])
      thumbnails.append(thumbs[k])
    else:
      j = old_at[paths[i]]
      codes.append(old.codes[j])
      thumbnails.append(old.thumbnails[j])
    keep.append(i)
  unreadable = [
    {'path': paths[todo[k]], 'reason': reason} for k, reason in sorted(reasons.items())
  ]
  for bad in unreadable:
    logging.warning('Skipping unreadable image %s: %s', bad['path'], bad['reason'])
  if not keep:
    raise FileNotFoundError(
      f'None of the {len(paths)} images under {images_dir} can be read '
      f'(first: {unreadable[0]["path"]}: {unreadable[0]["reason"]}).'
    )
  old_paths = set(old.paths) if old else set()
  summary = {
    'images': len(keep),
    'encoded': int(np.sum(readable)),
    'new': sum(1 for i in todo if paths[i] not in old_paths),
    'changed': sum(1 for i in todo if paths[i] in old_paths),
    'unchanged': len(paths) - len(todo),
    'deleted': len(old_paths - set(paths)),
    'unreadable': unreadable,
  }
  contents = Contents(
    manifest={},
    codes=np.stack(codes),
    paths=[paths[i] for i in keep],
    sha256=[digests[i] for i in keep],
    sizes=sizes[keep],
    mtimes=mtimes[keep],
    thumbnails=thumbnails,
  )
  manifest = {
    'format': FORMAT,
    'version': VERSION,
    'created': datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
    'images_root': os.path.abspath(images_dir),
    'count': len(keep),
    'bits': model.bits,
    'model': model.describe(),
    'last_update': {k: v for k, v in summary.items() if k != 'unreadable'},
    'unreadable': unreadable,
  }
  write_index(index_dir, model, contents, manifest)
  summary['seconds'] = time.monotonic() - start
  return summary


def define_flags() -> None:
  """The command line's flags (defined only when run as a program, so that the
  tools' modules import side by side)."""
  flags.DEFINE_string('workdir', None, 'Training workdir whose model encodes.')
  flags.DEFINE_string('images', None, 'Folder of images to index (recursively).')
  flags.DEFINE_string('output', None, 'Index directory (default: <workdir>/index).')
  flags.DEFINE_integer(
    'checkpoint_step', None, 'Checkpoint step to encode with (default: the latest).'
  )
  flags.DEFINE_integer('num_threads', 4, 'Threads that decode images.')


def main(argv):
  if len(argv) > 1:
    sys.exit(f'dahjax.index: unexpected arguments {argv[1:]}; see --help.')
  for name in ('workdir', 'images'):
    if not flags.FLAGS[name].value:
      sys.exit(f'dahjax.index: --{name} is required.')
  logging.get_absl_handler().python_handler.addFilter(cli.quiet_libraries)
  output = flags.FLAGS.output or os.path.join(flags.FLAGS.workdir, 'index')
  try:
    model = load_model(flags.FLAGS.workdir, flags.FLAGS.checkpoint_step)
    summary = build_index(
      model, flags.FLAGS.images, output, num_threads=flags.FLAGS.num_threads
    )
  except (FileNotFoundError, ValueError, RuntimeError) as e:
    sys.exit(f'dahjax.index: {e}')
  print(
    f'Indexed {summary["images"]} images of {flags.FLAGS.images} into {output} '
    f'({model.method}, {model.bits} bits, step {model.step}): {summary["new"]} new, '
    f'{summary["changed"]} changed, {summary["unchanged"]} unchanged, '
    f'{summary["deleted"]} deleted, {len(summary["unreadable"])} unreadable, '
    f'in {summary["seconds"]:.1f} s.'
  )
  for bad in summary['unreadable']:
    print(f'  unreadable: {bad["path"]}: {bad["reason"]}')


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
