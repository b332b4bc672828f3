"""Search an image index (made by `python -m dahjax.index`) by image.

  python -m dahjax.search --index INDEX QUERY.jpg [QUERY2.jpg ...] [--topk 10 | --radius 2]
      [--json] [--grid out.png]

prints, for each query, the nearest indexed images by Hamming distance (ties by index
order, as evaluation ranks them) as a table of rank, distance and path, or as JSON.
`--radius r` returns every image within distance r instead (exact, by multi-index
hashing). `--grid` draws each query beside its results.

From a program:

  from dahjax import search
  index = search.load_index('INDEX')
  results = index.search_images(['query.jpg'], topk=10)  # one list per query
  results[0][0].path, results[0][0].distance
  index.search_codes(codes, radius=2)                     # 0/1 codes [q, bits]
"""

import dataclasses
import io
import json
import os
import sys
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from dahjax import cli
from dahjax import index as index_lib
from dahjax.data import bad_images as bad_images_lib
from dahjax.data import sources

DEFAULT_TOPK = 10
MAX_TOPK = 1000


@dataclasses.dataclass(frozen=True)
class Result:
  """One retrieved image: its id in the index, path relative to the image root, and
  Hamming distance to the query."""

  id: int
  path: str
  distance: int

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def check_query(
  topk: int | None, radius: int | None, bits: int
) -> tuple[int | None, int | None]:
  """(topk, radius) with one of them set (topk 10 when neither is), or ValueError."""
  if topk is not None and radius is not None:
    raise ValueError('give either topk or radius, not both.')
  if radius is None:
    topk = DEFAULT_TOPK if topk is None else topk
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)):
      raise ValueError(f'topk must be an integer from 1 to {MAX_TOPK}, got {topk!r}.')
    if not 1 <= topk <= MAX_TOPK:
      raise ValueError(f'topk must be from 1 to {MAX_TOPK}, got {topk}.')
    return int(topk), None
  if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)):
    raise ValueError(f'radius must be an integer from 0 to {bits}, got {radius!r}.')
  if not 0 <= radius <= bits:
    raise ValueError(f'radius must be from 0 to {bits} (the code length), got {radius}.')
  return None, int(radius)


class Index:
  """An image index in memory: codes, paths, thumbnails and the model that encodes
  queries (compiled at the first image query)."""

  def __init__(self, path: str):
    self.path = path
    self.manifest = index_lib.read_manifest(path)
    self._contents = index_lib.read_contents(path, self.manifest)
    self.model = index_lib.read_model(path, self.manifest)

  def __len__(self) -> int:
    return len(self._contents.paths)

  @property
  def bits(self) -> int:
    return self.model.bits

  @property
  def paths(self) -> list[str]:
    return self._contents.paths

  @property
  def images_root(self) -> str:
    return self.manifest['images_root']

  def code(self, item: int) -> np.ndarray:
    """The 0/1 code [bits] of indexed image `item`."""
    return self._contents.codes[self.check_id(item)]

  def thumbnail(self, item: int) -> bytes:
    """The JPEG thumbnail of indexed image `item`."""
    return self._contents.thumbnails[self.check_id(item)]

  def check_id(self, item) -> int:
    """`item` as an int, or ValueError when it is no id of this index."""
    if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
      raise ValueError(f'an index id is an integer, got {item!r}.')
    if not 0 <= item < len(self):
      raise ValueError(f'No image {item} in the index: ids are 0 to {len(self) - 1}.')
    return int(item)

  def search_codes(
    self, codes, topk: int | None = None, radius: int | None = None
  ) -> list[list[Result]]:
    """The nearest images of each 0/1 query code [q, bits]: the `topk` nearest (10 by
    default), or every one within Hamming distance `radius`; by distance, then id."""
    topk, radius = check_query(topk, radius, self.bits)
    codes = np.asarray(codes)
    if topk is not None:
      found = self._contents.hamming.nearest(codes, topk)
    else:
      found = self._contents.hamming.search_batch(codes, radius)
    paths = self._contents.paths
    return [
      [Result(int(i), paths[i], int(d)) for i, d in zip(ids, dist)] for ids, dist in found
    ]

  def encode_images(self, images) -> np.ndarray:
    """0/1 codes [n, bits] of images: file paths or decoded uint8 HWC RGB arrays."""
    prepared = [
      self.model.prepare(sources.read_image(x) if isinstance(x, (str, os.PathLike)) else x)
      for x in images
    ]
    if not prepared:
      return np.zeros((0, self.bits), np.uint8)
    return self.model.encode(np.stack(prepared))

  def search_images(
    self, images, topk: int | None = None, radius: int | None = None
  ) -> list[list[Result]]:
    """`search_codes` of images (file paths or uint8 HWC arrays), encoded with the
    index's model and its evaluation transform."""
    check_query(topk, radius, self.bits)
    return self.search_codes(self.encode_images(images), topk=topk, radius=radius)


def load_index(path: str) -> Index:
  """The index at `path`; FileNotFoundError or ValueError saying what is wrong."""
  return Index(path)


class ImageTooLarge(ValueError):
  """An image over the pixel limit (or PIL's decompression-bomb limit)."""


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
  """Image bytes as uint8 HWC RGB; ValueError naming the problem (not an image,
  truncated), ImageTooLarge for too many pixels."""
  if not data:
    raise ValueError('the image is empty (0 bytes).')
  try:
    with Image.open(io.BytesIO(data)) as img:
      width, height = img.size
      if width * height > max_pixels:
        raise ImageTooLarge(
          f'the image has {width}x{height} = {width * height:,} pixels, over the limit '
          f'of {max_pixels:,}.'
        )
  except ValueError:
    raise
  except Image.UnidentifiedImageError as e:
    raise ValueError('not a readable image: no image format recognised in the data.') from e
  except Image.DecompressionBombError as e:
    raise ImageTooLarge(f'the image has too many pixels ({e}).') from e
  except Exception as e:  # PIL raises many types for what it cannot read.
    raise ValueError(f'not a readable image ({bad_images_lib.describe(e)}).') from e
  try:
    return sources.read_image(io.BytesIO(data))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'the image cannot be decoded ({bad_images_lib.describe(e)}).') from e


def write_grid(index: Index, queries: list[np.ndarray], results, path: str) -> None:
  """A PNG with one row per query: the query, then its results' thumbnails with their
  distances."""
  from dahjax import plots  # matplotlib only when a grid is asked for.

  cols = 1 + max((len(r) for r in results), default=0)
  fig = plots.new_figure(1.3 * cols, 1.5 * len(queries))
  for row, (query, found) in enumerate(zip(queries, results)):
    ax = fig.add_subplot(len(queries), cols, row * cols + 1)
    ax.imshow(query)
    ax.set_title('query', fontsize=8)
    ax.axis('off')
    for k, r in enumerate(found):
      ax = fig.add_subplot(len(queries), cols, row * cols + k + 2)
      ax.imshow(np.asarray(Image.open(io.BytesIO(index.thumbnail(r.id)))))
      ax.set_title(f'd={r.distance}', fontsize=8)
      ax.axis('off')
  plots.save_png(fig, path)


def define_flags() -> None:
  """The command line's flags (defined only when run as a program, so that the
  tools' modules import side by side)."""
  flags.DEFINE_string('index', None, 'Index directory made by dahjax.index.')
  flags.DEFINE_integer('topk', None, f'Nearest images per query (default {DEFAULT_TOPK}).')
  flags.DEFINE_integer('radius', None, 'Every image within this Hamming distance.')
  flags.DEFINE_bool('json', False, 'Print JSON instead of a table.')
  flags.DEFINE_string('grid', None, 'Also draw the queries and results to this PNG.')


def _table(query: str, found: list[Result], ms: float) -> str:
  lines = [
    f'{query}: {len(found)} results in {ms:.1f} ms',
    f'{"rank":>5} {"distance":>8}  path',
  ]
  lines += [f'{k:>5} {r.distance:>8}  {r.path}' for k, r in enumerate(found, 1)]
  return '\n'.join(lines)


def main(argv):
  queries = argv[1:]
  if not flags.FLAGS.index:
    sys.exit('dahjax.search: --index is required.')
  if not queries:
    sys.exit('dahjax.search: give one or more query images after the flags.')
  logging.get_absl_handler().python_handler.addFilter(cli.quiet_libraries)
  try:
    index = load_index(flags.FLAGS.index)
    topk, radius = check_query(flags.FLAGS.topk, flags.FLAGS.radius, index.bits)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'dahjax.search: {e}')
  images = []
  for q in queries:
    try:
      images.append(sources.read_image(q))
    except Exception as e:  # pylint: disable=broad-except
      sys.exit(f'dahjax.search: cannot read query {q}: {bad_images_lib.describe(e)}')
  index.encode_images(images[:1])  # Compiles the encoder outside the timing.
  results, times = [], []
  for image in images:
    start = time.perf_counter()
    results.append(index.search_images([image], topk=topk, radius=radius)[0])
    times.append(1e3 * (time.perf_counter() - start))
  if flags.FLAGS.json:
    out = {
      'index': flags.FLAGS.index,
      'images_root': index.images_root,
      'queries': [
        {'query': q, 'ms': ms, 'results': [r.to_dict() for r in found]}
        for q, found, ms in zip(queries, results, times)
      ],
    }
    print(json.dumps(out, indent=2))
  else:
    print(f'Index {flags.FLAGS.index}: {len(index)} images under {index.images_root}')
    print('\n\n'.join(_table(q, f, ms) for q, f, ms in zip(queries, results, times)))
  if flags.FLAGS.grid:
    shown = [np.asarray(Image.open(io.BytesIO(index_lib.thumbnail(i)))) for i in images]
    write_grid(index, shown, results, flags.FLAGS.grid)


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
