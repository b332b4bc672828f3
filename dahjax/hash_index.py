"""Exact Hamming-radius search over binary codes without scanning the database.

`HammingIndex` answers "every database item within Hamming distance r of this query"
with multi-index hashing (Norouzi, Punjani and Fleet, CVPR 2012). Codes are 0/1 arrays
[n, bits] (1 to 255 bits, the convention of `dahjax.retrieval`), split into m disjoint
substrings of contiguous bits, one hash table per substring.

Why it is exact (pigeonhole): write r = m r' + a with 0 <= a < m. An item within r of
the query cannot have its first a + 1 substrings all at distance >= r' + 1 and the others
all at distance >= r', since that sums to m r' + a + 1 > r. So it is found by looking up,
in a + 1 tables, every key within r' of the query's substring and, in the other tables,
every key within r' - 1 (none when r' = 0). This refines the plain bound floor(r / m),
applied to every table, and gives the same results with fewer lookups. The candidates are
then verified with exact distances (XOR + popcount on packed uint64 words).

Tables are NumPy arrays, not dicts: each holds the item ids sorted by substring key, the
sorted distinct keys and the offset of each key's bucket, so a lookup is a
`np.searchsorted` and a batch of queries is looked up at once.

Choice of m: substrings of about log2(n) bits (m = bits / log2(n), as the paper
recommends), so a bucket holds about one item when codes are spread out. A key fits in a
uint64, so m is at least ceil(bits / 64).

When the index is not worth it: a key lookup costs about as much as scanning
`_KEY_COST` packed words and a verified candidate about `_CANDIDATE_COST` (measured on
CPU with NumPy 2). A radius whose neighbour keys would cost more than a scan of the
database (large r, or short codes over few items) is answered by the exact linear scan;
so is a query whose buckets hold too many candidates (codes that crowd together).
Results are identical either way.
"""

import functools
import itertools
import math
import os
import uuid
import zipfile

import numpy as np

from dahjax import retrieval

MAX_BITS = retrieval.MAX_BITS

_FORMAT = 'dahjax.HammingIndex'
_VERSION = 1

# Cost of one key lookup and of one verified candidate, in scanned uint64 words.
_KEY_COST = 256
_CANDIDATE_COST = 32

# Query x neighbour-key pairs looked up, and query x candidate pairs verified, at once
# (they bound the memory of a batch).
_LOOKUP_CELLS = 1 << 20
_PAIR_CELLS = 1 << 22

Result = tuple[np.ndarray, np.ndarray]


def _as_codes(codes, what: str) -> np.ndarray:
  """0/1 codes [n, bits] as uint8, or a ValueError that says what is wrong."""
  codes = np.asarray(codes)
  if codes.ndim != 2:
    raise ValueError(f'{what} must be a 2-D 0/1 array [n, bits], got shape {codes.shape}.')
  if not 1 <= codes.shape[1] <= MAX_BITS:
    raise ValueError(f'{what} have {codes.shape[1]} bits; 1 to {MAX_BITS} are supported.')
  if codes.dtype.kind not in 'biuf' or not np.all((codes == 0) | (codes == 1)):
    raise ValueError(
      f'{what} must hold only 0 and 1 (binarise real-valued hashes with '
      '`hash > 0` or `hash > 0.5` first).'
    )
  return codes.astype(np.uint8)


def _pack(codes: np.ndarray) -> np.ndarray:
  """uint64 words [n, ceil(bits / 64)], bit b of word w = code[64 w + b]."""
  n, bits = codes.shape
  packed = np.packbits(codes, axis=1, bitorder='little')
  padded = np.zeros((n, 8 * (-(-bits // 64))), np.uint8)
  padded[:, : packed.shape[1]] = packed
  return padded.view('<u8').astype(np.uint64)


def _check_radius(radius) -> int:
  if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
    raise ValueError(f'radius={radius!r} must be a non-negative integer.')
  return int(radius)


def _sorted_result(ids: np.ndarray, dist: np.ndarray) -> Result:
  """(ids, distances) as int64, ordered by (distance, id); `ids` come in increasing order."""
  order = np.argsort(dist, kind='stable')
  return ids[order].astype(np.int64), dist[order].astype(np.int64)


def _scan(words: np.ndarray, query_words: np.ndarray, radius: int) -> Result:
  dist = retrieval.hamming_distance(words, query_words)
  ids = np.flatnonzero(dist <= radius)
  return _sorted_result(ids, dist[ids])


def linear_scan(database_codes, query_code, radius: int) -> Result:
  """Every database item within Hamming distance `radius` of a query, by a full scan.

  The reference for `HammingIndex` and its fallback: XOR + popcount against every item.

  Args:
    database_codes: 0/1 codes [n, bits].
    query_code: 0/1 code [bits].
    radius: the Hamming radius r >= 0.

  Returns:
    (ids, distances): int64 arrays of the items at distance <= r, ordered by distance,
    then by id.
  """
  codes = _as_codes(database_codes, 'Database codes')
  query = _as_codes(np.asarray(query_code)[None], 'The query code')
  if query.shape[1] != codes.shape[1]:
    raise ValueError(
      f'The query code has {query.shape[1]} bits but the database codes '
      f'have {codes.shape[1]}: encode both with the same model.'
    )
  return _scan(_pack(codes), _pack(query)[0], _check_radius(radius))


def _nearest(words: np.ndarray, query_words: np.ndarray, k: int, bits: int) -> Result:
  """The k items nearest one query, by (distance, id), in O(n): the distance d at
  which the k-th item falls is found from a count of each distance, and only the items
  below d and the first ones at d are sorted."""
  dist = retrieval.hamming_distance(words, query_words)
  if k >= len(dist):
    ids = np.arange(len(dist))
    return _sorted_result(ids, dist)
  counts = np.cumsum(np.bincount(dist, minlength=bits + 1))
  cut = int(np.searchsorted(counts, k))  # First distance with at least k items up to it.
  below = np.flatnonzero(dist < cut)
  at = np.flatnonzero(dist == cut)[: k - len(below)]
  ids = np.concatenate([below, at])
  ids.sort()
  return _sorted_result(ids, dist[ids])


@functools.cache
def _flip_masks(length: int, radius: int) -> np.ndarray:
  """Every uint64 with at most `radius` of its low `length` bits set, by popcount."""
  masks = [np.zeros(1, np.uint64)]
  bit = np.uint64(1) << np.arange(length, dtype=np.uint64)
  for k in range(1, min(radius, length) + 1):
    positions = np.array(list(itertools.combinations(range(length), k)), np.int64)
    masks.append(np.bitwise_or.reduce(bit[positions], axis=1))
  masks = np.concatenate(masks)
  masks.flags.writeable = False  # Shared by every search through the cache.
  return masks


def _neighbours(length: int, radius: int) -> int:
  """Number of keys within `radius` of a key of `length` bits."""
  return sum(math.comb(length, k) for k in range(min(radius, length) + 1))


def default_num_tables(n: int, bits: int) -> int:
  """m = bits / log2(n) (substrings of about log2(n) bits), within [ceil(bits / 64), bits]."""
  m = round(bits / max(math.log2(max(n, 2)), 1.0))
  return int(min(max(m, -(-bits // 64), 1), bits))


def _substring_bounds(bits: int, num_tables: int) -> list[tuple[int, int]]:
  """(start, length) of m contiguous substrings whose lengths differ by at most one."""
  short, extra = divmod(bits, num_tables)
  lengths = [short] * (num_tables - extra) + [short + 1] * extra
  starts = np.cumsum([0] + lengths[:-1])
  return [(int(s), n) for s, n in zip(starts, lengths)]


def _substring_keys(words: np.ndarray, start: int, length: int) -> np.ndarray:
  """Bits [start, start + length) of every packed code as uint64 keys [n]."""
  word, offset = divmod(start, 64)
  keys = words[:, word] >> np.uint64(offset)
  if offset + length > 64:  # The substring spans two words.
    keys |= words[:, word + 1] << np.uint64(64 - offset)
  if length < 64:
    keys &= np.uint64((1 << length) - 1)
  return keys


_ID_DTYPES = (np.int32, np.int64)


def _id_dtype(n: int):
  return _ID_DTYPES[0] if n < 2**31 else _ID_DTYPES[1]


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
  """Concatenation of arange(start, stop) over the given ranges, without a Python loop."""
  lengths = stops - starts
  total = int(np.sum(lengths))
  if total == 0:
    return np.zeros(0, np.int64)
  first = np.cumsum(lengths) - lengths
  return np.repeat(starts - first, lengths) + np.arange(total)


class HammingIndex:
  """Multi-index hashing over binary codes: exact search within a Hamming radius.

  Example:

    index = HammingIndex(database_codes)          # 0/1 codes [n, bits]
    ids, distances = index.search(query_code, 2)  # every item within distance 2
    index.save('index.npz')
    index = HammingIndex.load('index.npz')

  Results equal `linear_scan`'s: the ids of every item within the radius, ordered by
  distance and then by id, with their distances.

  References:
    Norouzi, Punjani and Fleet, "Fast Search in Hamming Space with Multi-Index
    Hashing", CVPR 2012.
  """

  def __init__(self, codes, num_tables: int | None = None):
    """Builds the tables.

    Args:
      codes: 0/1 database codes [n, bits], 1 to 255 bits, n >= 1. Item i has id i.
      num_tables: the number m of substrings and tables, from ceil(bits / 64) to bits;
        None picks substrings of about log2(n) bits (`default_num_tables`).

    Raises:
      ValueError: codes that are not a non-empty 2-D 0/1 array of 1 to 255 bits, or a
        number of tables out of range.
    """
    codes = _as_codes(codes, 'Database codes')
    n, bits = codes.shape
    if n == 0:
      raise ValueError('Database codes are empty: there is nothing to index.')
    m = default_num_tables(n, bits) if num_tables is None else num_tables
    low = -(-bits // 64)
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not low <= m <= bits:
      raise ValueError(
        f'num_tables={m!r} must be an integer from {low} to {bits} for '
        f'{bits}-bit codes (a substring holds at most 64 bits).'
      )
    self._bits = bits
    self._words = _pack(codes)
    self._bounds = _substring_bounds(bits, int(m))
    tables = [self._build_table(start, length) for start, length in self._bounds]
    self._set_tables(tables)

  def _build_table(self, start: int, length: int):
    """(sorted distinct keys, bucket offsets, item ids sorted by key) of one substring."""
    keys = _substring_keys(self._words, start, length)
    order = np.argsort(keys, kind='stable')  # Ids stay increasing inside a bucket.
    sorted_keys = keys[order]
    is_first = np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]])
    dtype = _id_dtype(len(keys))
    offsets = np.append(np.flatnonzero(is_first), len(keys)).astype(dtype)
    return sorted_keys[is_first], offsets, order.astype(dtype)

  def _set_tables(self, tables) -> None:
    # The ids of all tables in one array let a search gather every bucket at once.
    self._keys = [keys for keys, _, _ in tables]
    self._offsets = [offsets for _, offsets, _ in tables]
    self._ids = np.concatenate([ids for _, _, ids in tables])
    self._plans = {}

  def __len__(self) -> int:
    return len(self._words)

  @property
  def bits(self) -> int:
    """Code length of the indexed items."""
    return self._bits

  def codes(self) -> np.ndarray:
    """The indexed 0/1 codes [n, bits] (uint8), unpacked from the stored words."""
    as_bytes = self._words.astype('<u8').view(np.uint8).reshape(len(self._words), -1)
    return np.unpackbits(as_bytes, axis=1, count=self._bits, bitorder='little')

  @property
  def num_tables(self) -> int:
    """Number m of substrings, one hash table each."""
    return len(self._keys)

  @property
  def substring_lengths(self) -> tuple[int, ...]:
    """Bits of each table's substring (contiguous, in code order)."""
    return tuple(length for _, length in self._bounds)

  @property
  def nbytes(self) -> int:
    """Memory held by the packed codes and the tables, in bytes."""
    return (
      self._words.nbytes
      + self._ids.nbytes
      + sum(a.nbytes for a in self._keys)
      + sum(a.nbytes for a in self._offsets)
    )

  def search(self, query_code, radius: int) -> Result:
    """Every indexed item within Hamming distance `radius` of one query.

    Args:
      query_code: 0/1 code [bits].
      radius: the Hamming radius r >= 0.

    Returns:
      (ids, distances): int64 arrays of the items at distance <= r, ordered by distance,
      then by id.

    Raises:
      ValueError: a query that is not a 0/1 vector of the index's bit length, or a
        negative radius.
    """
    query = np.asarray(query_code)
    if query.ndim != 1:
      raise ValueError(
        f'search takes one query code [bits], got shape {query.shape}; '
        'use search_batch for several.'
      )
    return self.search_batch(query[None], radius)[0]

  def search_batch(self, query_codes, radius: int) -> list[Result]:
    """`search` for each query of a batch, with the lookups of all queries done at once.

    Args:
      query_codes: 0/1 codes [q, bits].
      radius: the Hamming radius r >= 0.

    Returns:
      A list of q (ids, distances) pairs, as `search` returns them.
    """
    query_words, radius = self._check_queries(query_codes, radius)
    plan = self._plan(radius)
    if plan is None:
      return [_scan(self._words, w, radius) for w in query_words]
    results = []
    for chunk in self._chunks(len(query_words), plan):
      results += self._search_chunk(query_words[chunk], radius, plan)
    return results

  def nearest(self, query_codes, k: int) -> list[Result]:
    """The `k` nearest items of each query by Hamming distance, ties by id.

    An exact scan (XOR + popcount over the packed codes, then a count of each
    distance), not a table lookup: top-k has no radius to bound the buckets by. The
    order is that of evaluation's ranking: by distance, then by id.

    Args:
      query_codes: 0/1 codes [q, bits].
      k: results per query, k >= 1 (all n items when k >= n).

    Returns:
      A list of q (ids, distances) pairs of min(k, n) items each, int64.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
      raise ValueError(f'k={k!r} must be a positive integer.')
    query_words, _ = self._check_queries(query_codes, 0)
    return [_nearest(self._words, w, int(k), self._bits) for w in query_words]

  def count_candidates(self, query_codes, radius: int) -> np.ndarray:
    """Number of items whose distance each query's search computes [q] (int64).

    The distinct items in the looked-up buckets, or the database size for a query that
    falls back to the linear scan. It measures how much work the index saves.
    """
    query_words, radius = self._check_queries(query_codes, radius)
    plan = self._plan(radius)
    if plan is None:
      return np.full(len(query_words), len(self), np.int64)
    counts = [np.zeros(0, np.int64)]
    for chunk in self._chunks(len(query_words), plan):
      scan, groups = self._candidates(query_words[chunk], plan)
      count = sum(
        (np.bincount(owner, minlength=len(scan)) for _, _, owner, _ in groups),
        np.zeros(len(scan), np.int64),
      )
      counts.append(np.where(scan, len(self), count))
    return np.concatenate(counts).astype(np.int64)

  def _check_queries(self, query_codes, radius) -> tuple[np.ndarray, int]:
    queries = _as_codes(query_codes, 'Query codes')
    if queries.shape[1] != self._bits:
      raise ValueError(
        f'Query codes have {queries.shape[1]} bits but the index holds '
        f'{self._bits}-bit codes: encode both with the same model.'
      )
    return _pack(queries), _check_radius(radius)

  def _plan(self, radius: int) -> list[tuple[int, int]] | None:
    """(table, substring radius) pairs to look up, or None where a scan is cheaper."""
    radius = min(radius, self._bits)
    if radius not in self._plans:
      self._plans[radius] = self._make_plan(radius)
    return self._plans[radius]

  def _make_plan(self, radius: int) -> list[tuple[int, int]] | None:
    m = self.num_tables
    r_sub, a = divmod(radius, m)
    # The a + 1 tables searched at r' are the shortest substrings (fewest neighbours).
    by_length = sorted(range(m), key=lambda t: self._bounds[t][1])
    plan = [(t, r_sub if i <= a else r_sub - 1) for i, t in enumerate(by_length)]
    plan = [(t, r) for t, r in plan if r >= 0]
    keys = sum(_neighbours(self._bounds[t][1], r) for t, r in plan)
    if keys * _KEY_COST > self._words.size:
      return None
    return plan

  def _chunks(self, n_queries: int, plan) -> list[slice]:
    keys = sum(_neighbours(self._bounds[t][1], r) for t, r in plan)
    size = max(1, _LOOKUP_CELLS // max(keys, 1))
    return [slice(i, i + size) for i in range(0, n_queries, size)]

  def _lookup(self, query_words, plan):
    """Buckets hit by the queries' neighbour keys: (query, start, stop) in `_ids`, by query."""
    n = len(self)
    owners, starts, stops = [], [], []
    for table, r in plan:
      start, length = self._bounds[table]
      unique_keys, offsets = self._keys[table], self._offsets[table]
      masks = _flip_masks(length, r)
      keys = (_substring_keys(query_words, start, length)[:, None] ^ masks).ravel()
      pos = np.minimum(np.searchsorted(unique_keys, keys), len(unique_keys) - 1)
      hit = np.flatnonzero(unique_keys[pos] == keys)
      owners.append(hit // len(masks))
      # Table t's ids sit at [t n, (t + 1) n) of `_ids`.
      starts.append(offsets[pos[hit]] + np.int64(table * n))
      stops.append(offsets[pos[hit] + 1] + np.int64(table * n))
    owner = np.concatenate(owners)
    order = np.argsort(owner, kind='stable')
    return owner[order], np.concatenate(starts)[order], np.concatenate(stops)[order]

  def _candidates(self, query_words, plan):
    """The queries to scan instead, and the distinct candidates of the others.

    Returns:
      scan: [q] bool, the queries whose buckets hold too many items to verify.
      groups: an iterator over (first query, end query, owner, item), the sorted
        distinct (query, item) candidate pairs of consecutive queries, in groups of
        about `_PAIR_CELLS` pairs so that crowded buckets cannot exhaust memory.
    """
    n, n_queries = len(self), len(query_words)
    owner, starts, stops = self._lookup(query_words, plan)
    sizes = stops - starts
    # Bucket sizes counted with repeats across tables bound the distinct candidates.
    found = np.bincount(owner, weights=sizes, minlength=n_queries)
    scan = found * _CANDIDATE_COST > self._words.size
    keep = ~scan[owner]
    owner, starts, stops, sizes = owner[keep], starts[keep], stops[keep], sizes[keep]
    found[scan] = 0
    total = np.cumsum(found)
    ends = np.searchsorted(total, np.arange(1, total[-1] // _PAIR_CELLS + 1) * _PAIR_CELLS)
    edges = np.unique(np.concatenate([[0], np.minimum(ends + 1, n_queries), [n_queries]]))

    def groups():
      for first, end in zip(edges[:-1], edges[1:]):
        a, b = np.searchsorted(owner, [first, end])
        pair_owner = np.repeat(owner[a:b], sizes[a:b])
        # One int64 per pair makes the union over tables a single np.unique.
        pairs = np.unique(pair_owner * n + self._ids[_ranges(starts[a:b], stops[a:b])])
        yield (first, end, *np.divmod(pairs, n))

    return scan, groups()

  def _search_chunk(self, query_words, radius: int, plan) -> list[Result]:
    scan, groups = self._candidates(query_words, plan)
    results = [None] * len(query_words)
    for first, end, owner, item in groups:
      dist = retrieval.hamming_distance(self._words[item], query_words[owner])
      keep = dist <= radius
      owner, item, dist = owner[keep], item[keep], dist[keep].astype(np.int64)
      order = np.lexsort((item, dist, owner))
      owner, item, dist = owner[order], item[order], dist[order]
      bounds = np.searchsorted(owner, np.arange(first, end + 1))
      for q, a, b in zip(range(first, end), bounds[:-1], bounds[1:]):
        results[q] = (
          _scan(self._words, query_words[q], radius) if scan[q] else (item[a:b], dist[a:b])
        )
    return results

  def save(self, path: str) -> None:
    """Writes the index to one .npz file, atomically.

    The file is written next to `path` under a temporary name and then renamed over
    `path`, so a reader never sees a half-written index and a crash leaves the old file.

    Args:
      path: the file to write (conventionally ending in .npz), written as given.
    """
    arrays = {
      'format': np.array(_FORMAT),
      'version': np.array(_VERSION),
      'bits': np.array(self._bits),
      'words': self._words,
      'bounds': np.array(self._bounds, np.int64).reshape(-1, 2),
    }
    n = len(self)
    for t, (keys, offsets) in enumerate(zip(self._keys, self._offsets)):
      arrays.update(
        {
          f'keys_{t}': keys,
          f'offsets_{t}': offsets,
          f'ids_{t}': self._ids[t * n : (t + 1) * n],
        }
      )
    path = os.fspath(path)
    temporary = os.path.join(
      os.path.dirname(os.path.abspath(path)),
      f'.{os.path.basename(path)}.{uuid.uuid4().hex}.tmp',
    )
    try:
      # os.open, unlike tempfile, creates the file with the usual umask permissions.
      with os.fdopen(
        os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), 'wb'
      ) as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
      os.replace(temporary, path)
    except BaseException:
      if os.path.exists(temporary):
        os.remove(temporary)
      raise

  @classmethod
  def load(cls, path: str) -> 'HammingIndex':
    """Reads an index written by `save`.

    Args:
      path: the .npz file.

    Returns:
      The index, with the same results as the one saved.

    Raises:
      FileNotFoundError: no file at `path`.
      ValueError: a file that is truncated, corrupt or not a saved HammingIndex.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(
        f'No HammingIndex file at {path}: build the index with '
        'HammingIndex(codes) and save it there.'
      )
    try:
      with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
      index = cls.__new__(cls)
      index._restore(arrays)
    except (
      OSError,
      EOFError,
      KeyError,
      IndexError,
      TypeError,
      ValueError,
      zipfile.BadZipFile,
    ) as e:
      raise ValueError(
        f'{path} is not a readable HammingIndex file ({type(e).__name__}: '
        f'{e}); it may be truncated or of another format. Rebuild the '
        'index with HammingIndex(codes) and save it again.'
      ) from e
    return index

  def _restore(self, arrays: dict) -> None:
    """Sets the fields from saved arrays, checking that they fit together."""
    if str(arrays.get('format', '')) != _FORMAT:
      raise ValueError(f'no {_FORMAT!r} format marker')
    if int(arrays['version']) != _VERSION:
      raise ValueError(f'format version {int(arrays["version"])}, expected {_VERSION}')
    self._bits = int(arrays['bits'])
    self._words = arrays['words']
    self._bounds = [(int(s), int(n)) for s, n in arrays['bounds']]
    n = len(self._words)
    starts, lengths = zip(*self._bounds) if self._bounds else ((), ())
    if (
      not 1 <= self._bits <= MAX_BITS
      or self._words.dtype != np.uint64
      or self._words.shape[1:] != (-(-self._bits // 64),)
      or n == 0
      or list(starts) != np.cumsum((0,) + lengths[:-1]).tolist()
      or sum(lengths) != self._bits
      or not all(0 < x <= 64 for x in lengths)
    ):
      raise ValueError('inconsistent codes or substrings')
    tables = []
    for t in range(len(self._bounds)):
      keys, offsets, ids = (arrays[f'{name}_{t}'] for name in ('keys', 'offsets', 'ids'))
      if (
        len(ids) != n
        or len(offsets) != len(keys) + 1
        or offsets[0] != 0
        or offsets[-1] != n
        or keys.dtype != np.uint64
        or np.any(keys[1:] <= keys[:-1])
        or offsets.dtype not in _ID_DTYPES
        or ids.dtype not in _ID_DTYPES
        or np.any(offsets[1:] <= offsets[:-1])
        or np.any(ids < 0)
        or np.any(ids >= n)
      ):
        raise ValueError(f'inconsistent table {t}')
      tables.append((keys, offsets, ids))
    self._set_tables(tables)
