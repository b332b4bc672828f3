"""A search page and JSON API over an image index (made by `python -m dahjax.index`).

  pip install -e '.[serve]'
  python -m dahjax.serve --index INDEX [--host 127.0.0.1] [--port 8000]

serves, with Flask under the waitress WSGI server:

  GET  /                    a page: drop or choose an image, see the nearest images as
                            thumbnails with their distances and the query time; click a
                            result to search by it
  POST /api/search          multipart field `image`, optional `topk` (1 to 1000, default
                            10) or `radius`: {"results": [{"id", "path", "distance"}],
                            "ms", "timing": {"decode_ms", "encode_ms", "search_ms"}}
  GET  /api/search?id=N     the same for indexed image N (its stored code; no upload)
  GET  /api/thumbnail/N     indexed image N's JPEG thumbnail
  GET  /api/health          {"status": "ok", "images", "bits", "method"}

Bad input (no `image` field, an empty, truncated or non-image upload, one over
`--max_upload_mb` or `--max_pixels`, a bad `topk` or `radius`, an unknown id) gets a
4xx JSON `{"error": ...}` saying what was wrong. Files are reached by index id only:
no request names a path. It listens on 127.0.0.1 unless `--host` says otherwise.
"""

from concurrent import futures
import importlib.resources
import queue
import sys
import threading
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from dahjax import cli
from dahjax import search

try:
  import flask
  from werkzeug import exceptions
except ImportError:  # The optional `serve` extra.
  flask = None

DEFAULT_MAX_UPLOAD_MB = 20
DEFAULT_MAX_PIXELS = 40_000_000


class BadRequest(ValueError):
  """A request the API answers with a 4xx JSON error."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class Batcher:
  """Encodes the uploads of concurrent requests together: a thread takes every image
  waiting (up to `max_batch`) and encodes them in one forward pass, padded to a power of
  two so that only log2(max_batch) + 1 shapes are ever compiled (`warm_up` compiles
  them). One request alone waits for no other."""

  def __init__(self, index: search.Index, max_batch: int = 16):
    self._index, self._max = index, max_batch
    self._queue: queue.Queue = queue.Queue()
    threading.Thread(target=self._run, daemon=True, name='encoder').start()

  def warm_up(self) -> None:
    size = int(self._index.model.config.data.image_size)
    blank = np.zeros((size, size, 3), np.uint8)
    n = 1
    while n <= self._max:
      self._index.model.encode(np.stack([blank] * n))
      n *= 2

  def encode(self, image: np.ndarray) -> np.ndarray:
    """The 0/1 code [bits] of a decoded uint8 HWC image."""
    future = futures.Future()
    self._queue.put((self._index.model.prepare(image), future))
    return future.result()

  def _run(self) -> None:
    while True:
      items = [self._queue.get()]
      while len(items) < self._max:
        try:
          items.append(self._queue.get_nowait())
        except queue.Empty:
          break
      images = np.stack([image for image, _ in items])
      try:
        codes = self._index.model.encode(images, pad_to=1 << (len(items) - 1).bit_length())
      except Exception as e:  # pylint: disable=broad-except
        for _, future in items:
          future.set_exception(e)
        continue
      for k, (_, future) in enumerate(items):
        future.set_result(codes[k])


def _int_arg(values, name: str) -> int | None:
  value = values.get(name)
  if value is None or value == '':
    return None
  try:
    return int(value)
  except ValueError:
    raise BadRequest(f'{name} must be an integer, got {value!r}.') from None


def _page() -> str:
  return importlib.resources.files('dahjax').joinpath('web/index.html').read_text()


def create_app(
  index: search.Index,
  *,
  max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
  max_pixels: int = DEFAULT_MAX_PIXELS,
  max_batch: int = 16,
):
  """The Flask app serving `index` (for tests: `create_app(index).test_client()`);
  uploads of concurrent requests are encoded together, up to `max_batch` at once."""
  if flask is None:
    raise ImportError("dahjax.serve needs Flask and waitress: pip install -e '.[serve]'")
  web = flask.Flask(__name__)
  web.batcher = Batcher(index, max_batch)
  web.config['MAX_CONTENT_LENGTH'] = int(max_upload_mb * 2**20)
  page = _page()

  def query_args(values) -> tuple[int | None, int | None]:
    try:
      return search.check_query(
        _int_arg(values, 'topk'), _int_arg(values, 'radius'), index.bits
      )
    except ValueError as e:
      raise BadRequest(str(e)) from None

  def indexed(item: int) -> None:
    try:
      index.check_id(item)
    except ValueError as e:
      raise BadRequest(str(e), 404) from None

  def answer(start: float, results, timing: dict[str, float]):
    return flask.jsonify(
      results=[r.to_dict() for r in results],
      ms=1e3 * (time.perf_counter() - start),
      timing=timing,
    )

  @web.errorhandler(BadRequest)
  def bad_request(e: BadRequest):
    return flask.jsonify(error=str(e)), e.status

  @web.errorhandler(exceptions.HTTPException)
  def http_error(e):
    message = {
      404: 'No such page or API route; the API is /api/search, /api/thumbnail/<id> '
      'and /api/health.',
      413: f'The upload is over the limit of {max_upload_mb:g} MB.',
    }.get(e.code, e.description)
    return flask.jsonify(error=message), e.code

  @web.get('/')
  def home():
    return flask.Response(page, mimetype='text/html')

  @web.get('/api/health')
  def health():
    return flask.jsonify(
      status='ok', images=len(index), bits=index.bits, method=index.model.method
    )

  @web.get('/api/thumbnail/<int:item>')
  def thumbnail(item: int):
    indexed(item)
    response = flask.Response(index.thumbnail(item), mimetype='image/jpeg')
    response.headers['Cache-Control'] = 'public, max-age=3600'
    return response

  @web.get('/api/search')
  def search_by_id():
    start = time.perf_counter()
    item = _int_arg(flask.request.args, 'id')
    if item is None:
      raise BadRequest(
        'GET /api/search needs ?id=<indexed image>; to search by a new image, POST it '
        "as multipart field 'image'."
      )
    indexed(item)
    topk, radius = query_args(flask.request.args)
    t = time.perf_counter()
    results = index.search_codes(index.code(item)[None], topk=topk, radius=radius)[0]
    timing = {
      'decode_ms': 0.0,
      'encode_ms': 0.0,
      'search_ms': 1e3 * (time.perf_counter() - t),
    }
    return answer(start, results, timing)

  @web.post('/api/search')
  def search_upload():
    start = time.perf_counter()
    request = flask.request
    if 'image' not in request.files:
      fields = sorted(set(request.files) | set(request.form))
      raise BadRequest(
        "POST /api/search takes the image as multipart field 'image'"
        + (f'; the request has {", ".join(repr(f) for f in fields)}.' if fields else '.')
      )
    topk, radius = query_args(request.form)
    data = request.files['image'].read()
    try:
      image = search.decode_image(data, max_pixels)
    except ValueError as e:
      status = 413 if isinstance(e, search.ImageTooLarge) else 400
      raise BadRequest(f'The upload: {e}', status) from None
    t1 = time.perf_counter()
    code = web.batcher.encode(image)[None]
    t2 = time.perf_counter()
    results = index.search_codes(code, topk=topk, radius=radius)[0]
    t3 = time.perf_counter()
    timing = {
      'decode_ms': 1e3 * (t1 - start),
      'encode_ms': 1e3 * (t2 - t1),
      'search_ms': 1e3 * (t3 - t2),
    }
    return answer(start, results, timing)

  return web


def define_flags() -> None:
  """The command line's flags (defined only when run as a program, so that the
  tools' modules import side by side)."""
  flags.DEFINE_string('index', None, 'Index directory made by dahjax.index.')
  flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on.')
  flags.DEFINE_integer('port', 8000, 'Port to listen on.')
  flags.DEFINE_integer('threads', 8, 'Request threads of the server.')
  flags.DEFINE_integer('max_batch', 16, 'Most uploads encoded in one forward pass.')
  flags.DEFINE_float(
    'max_upload_mb', DEFAULT_MAX_UPLOAD_MB, 'Largest upload accepted, in MB.'
  )
  flags.DEFINE_integer(
    'max_pixels', DEFAULT_MAX_PIXELS, 'Largest image accepted, in pixels (width x height).'
  )


def main(argv):
  if len(argv) > 1:
    sys.exit(f'dahjax.serve: unexpected arguments {argv[1:]}; see --help.')
  if not flags.FLAGS.index:
    sys.exit('dahjax.serve: --index is required.')
  logging.get_absl_handler().python_handler.addFilter(cli.quiet_libraries)
  try:
    import waitress
  except ImportError:
    sys.exit("dahjax.serve: needs Flask and waitress: pip install -e '.[serve]'")
  try:
    index = search.load_index(flags.FLAGS.index)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'dahjax.serve: {e}')
  web = create_app(
    index,
    max_upload_mb=flags.FLAGS.max_upload_mb,
    max_pixels=flags.FLAGS.max_pixels,
    max_batch=flags.FLAGS.max_batch,
  )
  web.batcher.warm_up()  # Compiles every batch shape before serving.
  print(
    f'Serving {len(index)} images of {flags.FLAGS.index} on http://{flags.FLAGS.host}:{flags.FLAGS.port}/'
  )
  sys.stdout.flush()
  waitress.serve(
    web, host=flags.FLAGS.host, port=flags.FLAGS.port, threads=flags.FLAGS.threads
  )


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
