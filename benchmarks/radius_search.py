"""Exact Hamming-radius search: `hash_index.HammingIndex` against a linear scan.

  python benchmarks/radius_search.py
  python benchmarks/radius_search.py --size 1000000 --bits 64 --radii 0,1,2,3 --output=

The database holds `--size` uniformly random codes (seeded). That is the hard case for
multi-index hashing: with substrings of about log2(n) bits most buckets hold zero or one
item, and a query's true neighbours are found only through its own buckets. Each query is
a database item with 0 to 3 of its bits flipped, so that the searches return something.

Compared on the same queries, side by side in one run:

  index         `HammingIndex.search_batch` over all queries, and `search` called once
                per query (which adds the per-call Python overhead);
  NumPy scan    per query: XOR with the packed uint64 database, `np.bitwise_count`,
                `np.flatnonzero(dist <= r)`, the hits ordered by (distance, id);
  JAX scan      64 queries at a time, jitted: XOR + `jax.lax.population_count` over
                the database packed as uint32 words, `dist <= r` packed into a bitmap of
                one bit per item so that little leaves the kernel, the few set bits then
                decoded and ordered in NumPy. XLA runs it on all CPU cores; NumPy and the
                index run on one.

Every method must return the same ids and distances for every query. Each rate is that of
the fastest of several calls over all queries. The speed-up is the index's batch rate over
the faster scan's rate. "Candidates" is the mean number of items whose distance the index
computes per query (`HammingIndex.count_candidates`). Results are appended to
docs/benchmarks.md.
"""

import functools
import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position
from dahjax import hash_index  # pylint: disable=wrong-import-position

_SIZE = flags.DEFINE_integer('size', 1_000_000, 'Database size.')
_BITS = flags.DEFINE_integer('bits', 64, 'Code length.')
_QUERIES = flags.DEFINE_integer('queries', 1000, 'Number of queries.')
_RADII = flags.DEFINE_list('radii', ['0', '1', '2', '3'], 'Hamming radii.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the codes and queries.')
_MIN_SECONDS = flags.DEFINE_float(
  'min_seconds',
  1.0,
  'Each measurement repeats fn for at least this long and keeps its fastest call.',
)
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(ROOT, 'docs', 'benchmarks.md'),
  'Markdown file to append to; empty to only print.',
)

_JAX_CHUNK = 64  # Queries per jitted scan call.


def make_data(n: int, bits: int, n_queries: int, seed: int):
  """Random database codes, and database items with 0 to 3 random bits flipped."""
  rng = np.random.default_rng(seed)
  codes = rng.integers(0, 2, size=(n, bits), dtype=np.uint8)
  queries = codes[rng.integers(0, n, n_queries)].copy()
  for row, flips in zip(queries, rng.integers(0, 4, n_queries)):
    row[rng.choice(bits, min(flips, bits), replace=False)] ^= 1
  return codes, queries


def pack64(codes: np.ndarray) -> np.ndarray:
  """uint64 words [n, ceil(bits / 64)], bit b of word w = code[64 w + b]."""
  packed = np.packbits(codes, axis=1, bitorder='little')
  padded = np.zeros((len(codes), 8 * -(-codes.shape[1] // 64)), np.uint8)
  padded[:, : packed.shape[1]] = packed
  return padded.view('<u8')


def order_hits(ids: np.ndarray, dist: np.ndarray):
  order = np.lexsort((ids, dist))
  return ids[order].astype(np.int64), dist[order].astype(np.int64)


def numpy_scan(db_words: np.ndarray, query_words: np.ndarray, radius: int) -> list:
  out = []
  for q in query_words:
    counts = np.bitwise_count(db_words ^ q)
    dist = counts[:, 0] if counts.shape[1] == 1 else counts.sum(axis=1, dtype=np.uint8)
    ids = np.flatnonzero(dist <= radius)
    out.append(order_hits(ids, dist[ids]))
  return out


@jax.jit
def _within_bitmap(db_words, query_words, radius):
  """Bit i of word j of row q: item 32 j + i within `radius` of query q; [q, n / 32]."""
  xor = jnp.bitwise_xor(query_words[:, None, :], db_words[None, :, :])
  dist = jnp.sum(jax.lax.population_count(xor), axis=-1, dtype=jnp.int32)
  within = (dist <= radius).astype(jnp.uint32).reshape(len(query_words), -1, 32)
  return jnp.sum(within << jnp.arange(32, dtype=jnp.uint32), axis=-1, dtype=jnp.uint32)


class JaxScan:
  """Jitted XOR + popcount over the whole database, hits returned as a bitmap."""

  def __init__(self, db_words: np.ndarray):
    self.n = len(db_words)
    padded = np.zeros((-(-self.n // 32) * 32, db_words.shape[1]), np.uint64)
    padded[: self.n] = db_words
    self.db_words64 = db_words
    self.db_words = jax.device_put(padded.view(np.uint32))  # No uint64 without x64.

  def __call__(self, query_words: np.ndarray, radius: int) -> list:
    out = []
    for start in range(0, len(query_words), _JAX_CHUNK):
      chunk = query_words[start : start + _JAX_CHUNK]
      # Pad to the chunk size so the kernel compiles once.
      padded = np.resize(chunk, (_JAX_CHUNK, chunk.shape[1])).view(np.uint32)
      bitmap = np.asarray(_within_bitmap(self.db_words, padded, radius))[: len(chunk)]
      out += self._decode(bitmap, chunk, radius)
    return out

  def _decode(self, bitmap: np.ndarray, query_words: np.ndarray, radius: int) -> list:
    words_per_query = bitmap.shape[1]
    nonzero = np.flatnonzero(bitmap)
    set_bits = np.unpackbits(
      bitmap.ravel()[nonzero].view(np.uint8).reshape(-1, 4), axis=1, bitorder='little'
    )
    row, bit = np.nonzero(set_bits)
    query, word = np.divmod(nonzero[row], words_per_query)
    ids = word * 32 + bit
    query, ids = query[ids < self.n], ids[ids < self.n]
    dist = np.bitwise_count(self.db_words64[ids] ^ query_words[query]).sum(axis=1)
    assert np.all(dist <= radius)
    bounds = np.searchsorted(query, np.arange(len(query_words) + 1))
    return [order_hits(ids[a:b], dist[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def queries_per_second(fn, n_queries: int) -> float:
  """Queries per second of fn()'s fastest call, of at least 3 over `--min_seconds`.

  The fastest call is the one least disturbed by other work on a shared machine.
  """
  fn()  # Warm-up: compilation, caches.
  times, start = [], time.perf_counter()
  while len(times) < 3 or time.perf_counter() - start < _MIN_SECONDS.value:
    call = time.perf_counter()
    fn()
    times.append(time.perf_counter() - call)
  return n_queries / min(times)


def same_results(a: list, b: list) -> bool:
  return len(a) == len(b) and all(
    np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b)
  )


def main(argv):
  del argv
  codes, queries = make_data(_SIZE.value, _BITS.value, _QUERIES.value, _SEED.value)
  start = time.perf_counter()
  index = hash_index.HammingIndex(codes)
  build_seconds = time.perf_counter() - start
  db_words, query_words = pack64(codes), pack64(queries)
  jax_scan = JaxScan(db_words)
  del codes
  lines = [
    '| radius | mean results | candidates per query | index q/s (batch) | '
    'index q/s (one by one) | NumPy scan q/s | JAX scan q/s | speed-up | equal |',
    '|---|---|---|---|---|---|---|---|---|',
  ]
  for radius in map(int, _RADII.value):
    results = index.search_batch(queries, radius)
    equal = (
      same_results(results, [index.search(q, radius) for q in queries])
      and same_results(results, numpy_scan(db_words, query_words, radius))
      and same_results(results, jax_scan(query_words, radius))
    )
    if not equal:
      raise AssertionError(f'The index and the scans disagree at radius {radius}.')
    n_q = len(queries)
    rates = {
      'batch': queries_per_second(lambda: index.search_batch(queries, radius), n_q),
      'one': queries_per_second(lambda: [index.search(q, radius) for q in queries], n_q),
      'numpy': queries_per_second(
        functools.partial(numpy_scan, db_words, query_words, radius), n_q
      ),
      'jax': queries_per_second(functools.partial(jax_scan, query_words, radius), n_q),
    }
    candidates = np.mean(index.count_candidates(queries, radius))
    found = np.mean([len(ids) for ids, _ in results])
    lines.append(
      f'| {radius} | {found:.2f} | {candidates:.1f} | {rates["batch"]:,.0f} | '
      f'{rates["one"]:,.0f} | {rates["numpy"]:,.0f} | {rates["jax"]:,.0f} | '
      f'{rates["batch"] / max(rates["numpy"], rates["jax"]):,.0f}x | yes |'
    )
    print(lines[-1], flush=True)
  lengths = ', '.join(map(str, index.substring_lengths))
  body = '\n'.join(lines) + (
    f'\n\n{_SIZE.value:,} random {_BITS.value}-bit codes (seed {_SEED.value}), '
    f'{_QUERIES.value:,} queries (database items with 0 to 3 bits flipped). Index: '
    f'{index.num_tables} tables (substrings of {lengths} bits), built in '
    f'{build_seconds:.2f} s, {index.nbytes / 2**20:.1f} MiB. q/s: queries per second, '
    'fastest of several calls over all queries. Speed-up: index batch rate over the '
    'faster scan. The JAX scan runs on all cores, NumPy and the index on one.'
  )
  print(body)
  report.append(
    _OUTPUT.value, 'Hamming-radius search: multi-index hashing against a linear scan', body
  )


if __name__ == '__main__':
  app.run(main)
