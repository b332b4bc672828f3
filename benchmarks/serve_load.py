"""Load test of `python -m dahjax.serve` on loopback: concurrent clients uploading a query.

  python benchmarks/serve_load.py [--size 1000000] [--clients 16] [--seconds 30]
      [--workdir W] [--output docs/benchmarks.md]

Builds an index of `--size` random codes (the load does not depend on what the codes
are) with the model of workdir W, or with an untrained model of configs/quickstart.py's
architecture (DAH ResNet30, 12 bits; the same work per query as a trained one), starts
the server in its own process, and runs `--clients` client threads that each POST one
real CIFAR-10 JPEG to /api/search (top 10) as fast as the server answers, for
`--seconds` seconds or `--max_requests` requests. Then the same for searches by indexed
id (GET /api/search?id=..., no upload: search alone). Reports requests/s, p50 and p99
latency and errors, and the server's own split of a request: upload decode, encode,
search.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app
from absl import flags
import numpy as np

from benchmarks import report

_SIZE = flags.DEFINE_integer('size', 1_000_000, 'Codes in the index.')
_CLIENTS = flags.DEFINE_integer('clients', 16, 'Concurrent clients.')
_SECONDS = flags.DEFINE_float('seconds', 30.0, 'Duration of the upload phase.')
_ID_SECONDS = flags.DEFINE_float('id_seconds', 15.0, 'Duration of the by-id phase.')
_MAX_REQUESTS = flags.DEFINE_integer('max_requests', 200_000, 'Bound on requests a phase.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Trained workdir (default: untrained).')
_THREADS = flags.DEFINE_integer('threads', 16, 'Server request threads.')
_OUTPUT = flags.DEFINE_string('output', None, 'Markdown file to append the table to.')


def build(index_dir: str) -> int:
  """A random-code index with a real model; returns its bit length."""
  import jax

  from configs import quickstart
  from dahjax import index as index_lib
  from dahjax import state as state_lib

  if _WORKDIR.value:
    model = index_lib.load_model(_WORKDIR.value)
  else:
    config = quickstart.get_config()
    net = state_lib.create_model(config)
    variables = state_lib.init_variables(jax.random.key(0), config, net)
    model = index_lib.Model(config, jax.tree.map(np.asarray, variables), 0, '(untrained)')
  n = _SIZE.value
  codes = np.random.default_rng(0).integers(0, 2, (n, model.bits), np.uint8)
  contents = index_lib.Contents(
    manifest={},
    codes=codes,
    paths=[f'random/{i:07d}.jpg' for i in range(n)],
    sha256=['0' * 64] * n,
    sizes=np.zeros(n, np.int64),
    mtimes=np.zeros(n, np.int64),
    thumbnails=[b''] * n,
  )
  manifest = {
    'format': index_lib.FORMAT,
    'version': index_lib.VERSION,
    'images_root': '(random codes)',
    'count': n,
    'bits': model.bits,
    'model': model.describe(),
    'unreadable': [],
  }
  index_lib.write_index(index_dir, model, contents, manifest)
  return model.bits


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def multipart(data: bytes) -> tuple[bytes, str]:
  boundary = uuid.uuid4().hex
  body = (
    (
      f'--{boundary}\r\nContent-Disposition: form-data; name="topk"\r\n\r\n10\r\n'
      f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
      'Content-Type: image/jpeg\r\n\r\n'
    ).encode()
    + data
    + f'\r\n--{boundary}--\r\n'.encode()
  )
  return body, f'multipart/form-data; boundary={boundary}'


def load(port: int, request, seconds: float) -> dict:
  """`--clients` threads repeating `request(connection, k)` for `seconds`."""
  latencies, timings, errors = [], [], [0]
  lock = threading.Lock()
  deadline = time.perf_counter() + seconds
  count = [0]

  def client(worker: int):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    k = worker
    while time.perf_counter() < deadline:
      with lock:
        if count[0] >= _MAX_REQUESTS.value:
          return
        count[0] += 1
      start = time.perf_counter()
      try:
        status, body = request(conn, k)
        ok = status == 200
      except (OSError, http.client.HTTPException):
        conn.close()
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
        ok, body = False, b''
      elapsed = time.perf_counter() - start
      with lock:
        if ok:
          latencies.append(elapsed)
          timings.append(json.loads(body)['timing'])
        else:
          errors[0] += 1
      k += _CLIENTS.value

  start = time.perf_counter()
  threads = [threading.Thread(target=client, args=(w,)) for w in range(_CLIENTS.value)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  wall = time.perf_counter() - start
  ms = 1e3 * np.array(latencies or [np.nan])
  split = {
    key: float(np.median([t[key] for t in timings])) if timings else float('nan')
    for key in ('decode_ms', 'encode_ms', 'search_ms')
  }
  return {
    'requests': len(latencies),
    'errors': errors[0],
    'rps': len(latencies) / wall,
    'p50': float(np.percentile(ms, 50)),
    'p99': float(np.percentile(ms, 99)),
    **split,
  }


def main(argv):
  del argv
  import dahjax

  assets = os.path.join(os.path.dirname(dahjax.__file__), 'data', 'assets')
  folder = os.path.join(assets, 'cifar10_quickstart', 'test', 'cat')
  with open(os.path.join(folder, sorted(os.listdir(folder))[0]), 'rb') as f:
    jpeg = f.read()
  with tempfile.TemporaryDirectory() as tmp:
    index_dir = os.path.join(tmp, 'index')
    start = time.perf_counter()
    bits = build(index_dir)
    print(
      f'Built an index of {_SIZE.value:,} random {bits}-bit codes in '
      f'{time.perf_counter() - start:.0f} s.',
      flush=True,
    )
    port = free_port()
    server = subprocess.Popen(
      [
        sys.executable,
        '-m',
        'dahjax.serve',
        '--index',
        index_dir,
        '--port',
        str(port),
        '--threads',
        str(_THREADS.value),
      ],
      stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL,
      text=True,
    )
    try:
      line = server.stdout.readline()  # 'Serving ...' once compiled and listening.
      if not line.startswith('Serving'):
        sys.exit(f'The server did not start: {line!r}')
      time.sleep(0.5)
      body, content_type = multipart(jpeg)

      def by_upload(conn, k):
        conn.request('POST', '/api/search', body, {'Content-Type': content_type})
        r = conn.getresponse()
        return r.status, r.read()

      def by_id(conn, k):
        conn.request('GET', f'/api/search?id={(k * 7919) % _SIZE.value}&topk=10')
        r = conn.getresponse()
        return r.status, r.read()

      rows = [
        (
          'POST /api/search (upload a 32x32 JPEG, top 10)',
          load(port, by_upload, _SECONDS.value),
        ),
        ('GET /api/search?id= (search only, top 10)', load(port, by_id, _ID_SECONDS.value)),
      ]
    finally:
      server.terminate()
      server.wait(timeout=30)
  lines = [
    f'{_CLIENTS.value} concurrent clients on loopback, server with {_THREADS.value} '
    f'threads (waitress), index of {_SIZE.value:,} random {bits}-bit codes, model '
    f'{_WORKDIR.value or "DAH ResNet30 of configs/quickstart.py, untrained"}; '
    "the request split is the server's median.",
    '',
    '| query | requests | errors | requests/s | p50 ms | p99 ms | decode ms | encode ms '
    '| search ms |',
    '|---|---|---|---|---|---|---|---|---|',
  ]
  for name, r in rows:
    lines.append(
      f'| {name} | {r["requests"]:,} | {r["errors"]} | {r["rps"]:.1f} | {r["p50"]:.1f} | '
      f'{r["p99"]:.1f} | {r["decode_ms"]:.2f} | {r["encode_ms"]:.1f} | {r["search_ms"]:.1f} |'
    )
  table = '\n'.join(lines)
  print(table)
  report.append(_OUTPUT.value, 'Search server under load', table)


if __name__ == '__main__':
  app.run(main)
