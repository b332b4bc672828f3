"""Retrieval with binary codes: exact ranking metrics at scale, in bounded memory.

Codes enter as 0/1 arrays [n, bits] (at most 255 bits) and labels as 0/1 arrays
[n, classes] (one-hot or multi-hot); a database item is relevant to a query when they
share a label. Codes are packed into uint32 words and compared with XOR + popcount.
The metrics are those DAH and DPFAH report (mAP@K, precision@N, precision within a
Hamming radius, the PR curve, bit balance); `retrieval_metrics` defines them.

How the computation scales: docs/design.md, section dahjax/retrieval.py.
"""

from collections.abc import Sequence
import concurrent.futures
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

# Query chunks hold at most this many query x database cells (about 12 bytes each while
# a chunk is processed: distances, relevance, sort order, cumulative counts).
_CHUNK_CELLS = 1 << 23

# Codes of at most this many bits: distances are counted in uint8.
MAX_BITS = 255


@jax.jit
def pack_codes(codes: jax.Array) -> jax.Array:
  """Packs 0/1 codes into uint32 words, 32 bits a word.

  Bit b of word w holds code bit 32 w + b; the last word is padded with zeros.

  Args:
    codes: 0/1 codes [n, bits] of any integer or boolean dtype.

  Returns:
    uint32 words [n, ceil(bits / 32)].

  Examples:
    >>> import numpy as np
    >>> from dahjax import retrieval
    >>> words = retrieval.pack_codes(np.array([[1, 0, 1, 1], [0, 1, 0, 0]]))
    >>> print(words, words.dtype)
    [[13]
     [ 2]] uint32
  """
  n, bits = codes.shape
  words = -(-bits // 32)
  padded = (
    jnp.zeros((n, words * 32), jnp.uint32).at[:, :bits].set(codes.astype(jnp.uint32) & 1)
  )
  shifts = jnp.arange(32, dtype=jnp.uint32)
  return jnp.sum(padded.reshape(n, words, 32) << shifts, axis=-1, dtype=jnp.uint32)


def hamming_distance(a, b):
  """Computes the Hamming distances popcount(a XOR b) between packed codes.

  The one Hamming-distance kernel of dahjax: NumPy arrays are compared with NumPy (the
  radius index verifies small candidate sets on the host), anything else with
  jax.numpy, inside or outside `jax.jit`. Words of any unsigned width (the uint32 of
  `pack_codes`, the index's uint64) work.

  Args:
    a: packed codes [..., w].
    b: packed codes [..., w], broadcastable against `a` (e.g. queries [q, 1, w]
      against a database [1, n, w] give all pairs).

  Returns:
    uint8 distances [...] (every distance of codes of up to 255 bits fits).

  Examples:
    >>> import numpy as np
    >>> from dahjax import retrieval
    >>> queries = retrieval.pack_codes(np.array([[1, 0, 1, 1], [0, 1, 0, 0]]))
    >>> database = retrieval.pack_codes(np.array([[1, 0, 1, 0], [1, 1, 1, 1]]))
    >>> print(retrieval.hamming_distance(queries[:, None], database[None]))
    [[1 1]
     [3 3]]
  """
  xp = np if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) else jnp
  counts = xp.bitwise_count(xp.bitwise_xor(a, b))
  if counts.shape[-1] == 1:
    return counts[..., 0].astype(xp.uint8)
  return xp.sum(counts, axis=-1, dtype=xp.uint8)


@jax.jit
def _distances_and_relevance(
  query_words, database_words, query_label_words, database_label_words
):
  # uint8 distances make the sort that follows a radix sort.
  dist = hamming_distance(query_words[:, None, :], database_words[None, :, :])
  shared = jnp.bitwise_and(query_label_words[:, None, :], database_label_words[None, :, :])
  return dist, jnp.any(shared != 0, axis=-1)


def check_bits(bits: int) -> None:
  """Raises ValueError for codes longer than retrieval supports (`MAX_BITS`)."""
  if bits > MAX_BITS:
    raise ValueError(
      f'Codes of {bits} bits are not supported: retrieval counts Hamming '
      f'distances in uint8, so codes have at most {MAX_BITS} bits.'
    )


def _check_inputs(query_codes, database_codes, query_labels, database_labels):
  arrays = [
    np.asarray(a) for a in (query_codes, database_codes, query_labels, database_labels)
  ]
  names = ('query_codes', 'database_codes', 'query_labels', 'database_labels')
  for name, a in zip(names, arrays):
    if a.ndim != 2:
      raise ValueError(
        f'{name} must be a 2-D 0/1 array [n, bits or classes], got shape {a.shape}.'
      )
  q, d, ql, dl = arrays
  if q.shape[1] != d.shape[1]:
    raise ValueError(
      f'Query codes have {q.shape[1]} bits but database codes have '
      f'{d.shape[1]}: encode both with the same model.'
    )
  check_bits(q.shape[1])
  if len(d) == 0:
    raise ValueError('The database is empty: nothing to retrieve.')
  if len(q) == 0:
    raise ValueError('There are no queries.')
  for codes, labels, which in ((q, ql, 'query'), (d, dl, 'database')):
    if len(codes) != len(labels):
      raise ValueError(
        f'{which} codes have {len(codes)} rows but {which} labels have '
        f'{len(labels)}: they must describe the same items.'
      )
  if ql.shape[1] != dl.shape[1]:
    raise ValueError(
      f'Query labels have {ql.shape[1]} classes but database labels have {dl.shape[1]}.'
    )
  return q, d, ql, dl


def _check_count(value: int | None, n_db: int, what: str) -> int:
  if value is None:
    return n_db
  if not isinstance(value, (int, np.integer)) or not 1 <= value <= n_db:
    raise ValueError(
      f'{what}={value} must lie in [1, {n_db}] (the database size); '
      'use None for the whole database.'
    )
  return int(value)


@dataclasses.dataclass
class _ChunkResult:
  """Per-query results of one chunk of queries."""

  ap: np.ndarray  # [q] AP@K, ties by index.
  ap_tie_aware: np.ndarray  # [q] tie-aware AP@K.
  hits_at: np.ndarray  # [q, len(ns)] relevant items in the top N, ties by index.
  hist: np.ndarray  # [q, bits + 1] items per distance.
  rel_hist: np.ndarray  # [q, bits + 1] relevant items per distance.


class _Harmonic:
  """H(m) = sum_{i <= m} 1/i for m up to the database size, in float64."""

  def __init__(self, n: int):
    self.table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])

  def __call__(self, m):
    return self.table[m]


def _tie_aware_ap(hist, rel_hist, topk, harmonic) -> np.ndarray:
  """Tie-aware AP@topk from per-distance counts [q, bits + 1] (He et al. 2018, eq. 8).

  Inside a bucket of n_d items (n_d+ relevant) after c items (c+ relevant), the item at
  position i is relevant with probability n_d+ / n_d and then expects
  (c+ + 1 + (i - 1)(n_d+ - 1)/(n_d - 1)) / (c + i) as precision; the sum over i is
  b m + (a - b (c + 1)) (H(c + m) - H(c)) with a = c+ + 1, b = (n_d+ - 1)/(n_d - 1) and
  m the bucket's items inside the top K.
  """
  before = np.cumsum(hist, axis=1) - hist
  rel_before = np.cumsum(rel_hist, axis=1) - rel_hist
  taken = np.clip(topk - before, 0, hist)  # m per bucket.
  n, npos = hist.astype(np.float64), rel_hist.astype(np.float64)
  b = np.where(n > 1, (npos - 1) / np.maximum(n - 1, 1), 0.0)
  a = rel_before + 1.0
  sums = b * taken + (a - b * (before + 1)) * (harmonic(before + taken) - harmonic(before))
  expected_precision = np.sum(np.where(n > 0, npos / np.maximum(n, 1) * sums, 0.0), axis=1)
  expected_relevant = np.sum(np.where(n > 0, npos * taken / np.maximum(n, 1), 0.0), axis=1)
  return np.where(
    expected_relevant > 0, expected_precision / np.maximum(expected_relevant, 1e-300), 0.0
  )


def _ranked_positions(order, rel_row, topk: int, ns: Sequence[int]):
  """AP@topk and precision@N of one query from its ranking `order` and relevance [n].

  Only the ranks of the relevant items matter: AP@K is the mean of m / rank of the m-th
  relevant item over those within the top K, and precision@N counts the ranks up to N.
  """
  positions = np.flatnonzero(rel_row[order]) + 1  # 1-based ranks, ascending.
  in_top = positions[: np.searchsorted(positions, topk, side='right')]
  ap = np.mean(np.arange(1, len(in_top) + 1) / in_top) if len(in_top) else 0.0
  return ap, np.searchsorted(positions, ns, side='right'), positions


def _process_chunk(dist, rel, bits, topk, ns, harmonic) -> _ChunkResult:
  """Ranks a chunk of queries: a stable sort by distance (NumPy's radix sort on uint8),
  limited to the items up to the depth-th item's distance when the depth (the largest
  of K and the N of precision@N) is below the database size."""
  q, n = dist.shape
  depth = max([topk, *ns])
  hist = np.empty((q, bits + 1), np.int64)
  rel_hist = np.empty((q, bits + 1), np.int64)
  ap = np.empty(q)
  hits_at = np.empty((q, len(ns)), np.int64)
  values = np.arange(bits + 2)
  if depth == n:
    # One 2-D sort: several times faster per row than sorting rows one by one.
    orders = np.argsort(dist, axis=1, kind='stable')
    for i in range(q):
      sorted_dist = dist[i][orders[i]]
      hist[i] = np.diff(np.searchsorted(sorted_dist, values))
      ap[i], hits_at[i], positions = _ranked_positions(orders[i], rel[i], topk, ns)
      rel_hist[i] = np.bincount(sorted_dist[positions - 1], minlength=bits + 1)
    return _ChunkResult(
      ap, _tie_aware_ap(hist, rel_hist, topk, harmonic), hits_at, hist, rel_hist
    )
  for i in range(q):
    hist[i] = np.bincount(dist[i], minlength=bits + 1)
    rel_hist[i] = np.bincount(dist[i][rel[i]], minlength=bits + 1)
    # Only items up to the distance of the depth-th item can be in the top `depth`.
    threshold = np.argmax(np.cumsum(hist[i]) >= depth)
    candidates = np.flatnonzero(dist[i] <= threshold)
    order = candidates[np.argsort(dist[i][candidates], kind='stable')[:depth]]
    ap[i], hits_at[i], _ = _ranked_positions(order, rel[i], topk, ns)
  return _ChunkResult(
    ap, _tie_aware_ap(hist, rel_hist, topk, harmonic), hits_at, hist, rel_hist
  )


def _pack_labels(labels: np.ndarray) -> jax.Array:
  return pack_codes(jnp.asarray(labels != 0, jnp.uint8))


def _chunk_size(n_queries: int, n_db: int) -> int:
  return max(1, min(n_queries, _CHUNK_CELLS // n_db))


def _ranking_results(
  query_codes, database_codes, query_labels, database_labels, topk: int, ns: Sequence[int]
) -> list[_ChunkResult]:
  n_q, n_db, bits = len(query_codes), len(database_codes), query_codes.shape[1]
  chunk = _chunk_size(n_q, n_db)
  db_words = pack_codes(jnp.asarray(database_codes))
  q_words = pack_codes(jnp.asarray(query_codes))
  db_label_words = _pack_labels(database_labels)
  q_label_words = _pack_labels(query_labels)
  harmonic = _Harmonic(n_db)

  def distances(start):
    stop = min(start + chunk, n_q)
    # Pad the last chunk to the full chunk size so the kernel compiles once.
    idx = np.minimum(np.arange(start, start + chunk), n_q - 1)
    dist, rel = _distances_and_relevance(
      q_words[idx], db_words, q_label_words[idx], db_label_words
    )
    return np.asarray(dist)[: stop - start], np.asarray(rel)[: stop - start]

  # XLA computes the next chunk's distances while NumPy ranks earlier ones in threads;
  # at most `workers` chunks wait, which bounds memory.
  workers = max(1, min(os.cpu_count() or 1, 4))
  results, pending = [], []
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for start in range(0, n_q, chunk):
      if len(pending) >= workers:
        results.append(pending.pop(0).result())
      pending.append(
        pool.submit(_process_chunk, *distances(start), bits, topk, ns, harmonic)
      )
    results += [f.result() for f in pending]
  return results


def _radius_metrics(hist: np.ndarray, rel_hist: np.ndarray):
  """Per query and radius r = 0..bits: precision and recall of the items at distance <= r."""
  within = np.cumsum(hist, axis=1)
  hits = np.cumsum(rel_hist, axis=1)
  precision = np.where(within > 0, hits / np.maximum(within, 1), 0.0)
  total_rel = hits[:, -1:]
  recall = np.where(total_rel > 0, hits / np.maximum(total_rel, 1), 0.0)
  return precision, recall


def retrieval_metrics(
  query_codes,
  database_codes,
  query_labels,
  database_labels,
  *,
  topk: int | None = None,
  precision_at: int | None = 1000,
  radius: int = 2,
  curves: bool = False,
  curve_points: Sequence[int] | None = None,
  topn_pr_curve: bool = False,
) -> dict:
  """Computes all ranking metrics of Hamming ranking in one pass over the database.

  Each query ranks the database by Hamming distance, ties broken by database index (a
  stable sort). AP@K averages precision@rank over the relevant items in the top K (a
  query with none there scores 0), and mAP@K is its mean over the queries;
  precision@N is the fraction of relevant items in the top N; precision and recall
  within Hamming radius r count the items at distance <= r (a query retrieving nothing
  has precision 0, a query with no relevant item recall 0). The tie-aware AP averages
  AP over every order of the items at equal distance; at K below the database size it
  is the ratio of the expected precision sum to the expected number of relevant items
  in the top K. Every value is a mean over the queries.

  Args:
    query_codes: 0/1 codes [q, bits].
    database_codes: 0/1 codes [n, bits].
    query_labels: 0/1 labels [q, C].
    database_labels: 0/1 labels [n, C].
    topk: K of mAP@K; None ranks the whole database (mAP@ALL).
    precision_at: N of precision@N; None skips it, and N larger than the database is
      clipped to the database size.
    radius: Hamming radius r of the radius precision and recall.
    curves: also return the curves: precision@N over `curve_points`, and precision and
      recall within every radius 0..bits (the PR curve).
    curve_points: the N of the precision@N curve (default 1, 5, 10, 20, 50, 100, then
      every 100 up to 1,000, clipped to the database size).
    topn_pr_curve: also return 'topn_pr_curve', precision and recall of the top N
      for N = 100, 200, ... and then every N up to the database size, in the form
      DeepHash-pytorch writes and plots (`topn_pr_points`).

  Returns:
    {'map', 'map_tie_aware', 'precision_at_<N>', 'precision_radius_<r>',
    'recall_radius_<r>'} as Python floats; with `curves`, also 'precision_at_n'
    {'n': [...], 'precision': [...]} and 'radius_curve' {'radius': [0..bits],
    'precision': [...], 'recall': [...]}; with `topn_pr_curve`, 'topn_pr_curve'
    {'index': [N - 1, ...], 'P': [...], 'R': [...]}.

  Raises:
    ValueError: inputs that are not 2-D, disagree in bits, classes or rows, hold more
      than 255 bits or no item, or a `topk`, `precision_at` or `radius` out of range.

  Examples:
    >>> import numpy as np
    >>> from dahjax import retrieval
    >>> query_codes = np.array([[1, 0, 1, 1], [0, 1, 0, 0]])
    >>> database_codes = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 1]])
    >>> query_labels = np.array([[1, 0], [0, 1]])
    >>> database_labels = np.array([[1, 0], [0, 1], [0, 1], [0, 1]])
    >>> metrics = retrieval.retrieval_metrics(query_codes, database_codes, query_labels,
    ...                                       database_labels, precision_at=2)
    >>> for name, value in metrics.items():
    ...   print(name, round(value, 4))
    map 0.9028
    map_tie_aware 0.7593
    precision_at_2 0.5
    precision_radius_2 0.6667
    recall_radius_2 0.6667

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. IV.A (mAP, top-1,000 precision, precision within Hamming radius 2, PR
    curves).

    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, "Evaluation metrics and settings" (mAP@ALL,
    mAP@5000, mAP@1000, P@H=2, P@N, PR curves).

    He et al., "Hashing as Tie-Aware Learning to Rank", CVPR 2018 (tie-aware AP).
  """
  q, d, ql, dl = _check_inputs(query_codes, database_codes, query_labels, database_labels)
  n_db, bits = len(d), q.shape[1]
  topk = _check_count(topk, n_db, 'topk')
  if not isinstance(radius, (int, np.integer)) or radius < 0:
    raise ValueError(f'radius={radius} must be a non-negative integer.')
  n_at = None if precision_at is None else min(_check_count_positive(precision_at), n_db)
  points = []
  if curves:
    points = sorted({min(n, n_db) for n in (curve_points or _default_curve_points())})
  pr_points = topn_pr_points(n_db) if topn_pr_curve else []
  ns = sorted({*points, *([n_at] if n_at else []), *pr_points})
  chunks = _ranking_results(q, d, ql, dl, topk, ns)
  cat = lambda field: np.concatenate([getattr(c, field) for c in chunks])
  hits_at = cat('hits_at')
  p_at = hits_at / np.asarray(ns, np.float64)
  precision_r, recall_r = _radius_metrics(cat('hist'), cat('rel_hist'))
  r = min(radius, bits)
  out = {
    'map': float(np.mean(cat('ap'))),
    'map_tie_aware': float(np.mean(cat('ap_tie_aware'))),
  }
  if n_at is not None:
    out[f'precision_at_{precision_at}'] = float(np.mean(p_at[:, ns.index(n_at)]))
  out[f'precision_radius_{radius}'] = float(np.mean(precision_r[:, r]))
  out[f'recall_radius_{radius}'] = float(np.mean(recall_r[:, r]))
  if curves:
    out['precision_at_n'] = {
      'n': points,
      'precision': [float(np.mean(p_at[:, ns.index(n)])) for n in points],
    }
    out['radius_curve'] = {
      'radius': list(range(bits + 1)),
      'precision': np.mean(precision_r, axis=0).tolist(),
      'recall': np.mean(recall_r, axis=0).tolist(),
    }
  if topn_pr_curve:
    out['topn_pr_curve'] = _topn_pr_curve(hits_at, ns, pr_points, cat('rel_hist'))
  return out


def topn_pr_points(n_db: int) -> list[int]:
  """The N of DeepHash-pytorch's top-N PR curve (utils/tools.py, `validate`): every
  100th up to the last full hundred, then every N up to the database size."""
  hundreds = list(range(100, n_db // 100 * 100 + 1, 100))
  return hundreds + list(range(n_db // 100 * 100 + 1, n_db + 1))


def _topn_pr_curve(hits_at, ns, points, rel_hist) -> dict[str, list]:
  """{'index': N - 1 per point, 'P', 'R'}: precision and recall of the top N averaged
  over the queries with at least one relevant item, as DeepHash-pytorch's
  `CalcTopMapWithPR` averages them (it keeps the queries whose recall reaches 1)."""
  relevant = rel_hist.sum(axis=1)
  keep = relevant > 0
  columns = [ns.index(n) for n in points]
  hits = hits_at[keep][:, columns].astype(np.float64)
  if not keep.any():
    zeros = [0.0] * len(points)
    return {'index': [n - 1 for n in points], 'P': zeros, 'R': zeros}
  return {
    'index': [n - 1 for n in points],
    'P': np.mean(hits / np.asarray(points, np.float64), axis=0).tolist(),
    'R': np.mean(hits / relevant[keep, None], axis=0).tolist(),
  }


def _check_count_positive(n) -> int:
  if not isinstance(n, (int, np.integer)) or n < 1:
    raise ValueError(f'precision_at={n} must be a positive integer (or None).')
  return int(n)


def _default_curve_points() -> list[int]:
  return [1, 5, 10, 20, 50, *range(100, 1001, 100)]


def mean_average_precision(
  query_codes, database_codes, query_labels, database_labels, topk: int | None = None
) -> float:
  """Computes mAP@topk of Hamming ranking, ties broken by database index.

  AP@K is the mean of precision@rank over the relevant items in a query's top K, 0 for
  a query with none there; see `retrieval_metrics`.

  Args:
    query_codes: 0/1 codes [q, bits].
    database_codes: 0/1 codes [n, bits].
    query_labels: 0/1 labels [q, C] (one-hot or multi-hot).
    database_labels: 0/1 labels [n, C].
    topk: K; None means the whole database (mAP@ALL).

  Returns:
    mAP as a Python float.

  Examples:
    >>> import numpy as np
    >>> from dahjax import retrieval
    >>> query_codes = np.array([[1, 0, 1, 1], [0, 1, 0, 0]])
    >>> database_codes = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 1]])
    >>> query_labels = np.array([[1, 0], [0, 1]])
    >>> database_labels = np.array([[1, 0], [0, 1], [0, 1], [0, 1]])
    >>> print(round(retrieval.mean_average_precision(
    ...     query_codes, database_codes, query_labels, database_labels), 4))
    0.9028
    >>> print(round(retrieval.mean_average_precision(
    ...     query_codes, database_codes, query_labels, database_labels, topk=2), 4))
    1.0

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. IV.A and Table 2.

    Yang, Wang & Cheng, "Deep parameter-free attention hashing for image
    retrieval", Scientific Reports 2022, "Evaluation metrics and settings" and
    Table 6.
  """
  return retrieval_metrics(
    query_codes, database_codes, query_labels, database_labels, topk=topk, precision_at=None
  )['map']


def tie_aware_map(
  query_codes, database_codes, query_labels, database_labels, topk: int | None = None
) -> float:
  """Computes the tie-aware mAP@topk: AP averaged over every order of tied items.

  Items at equal Hamming distance have no order of their own; the tie-aware AP takes
  the expectation of AP over all their orders, in closed form, so it does not depend
  on how ties are broken (see `retrieval_metrics`).

  Args:
    query_codes: 0/1 codes [q, bits].
    database_codes: 0/1 codes [n, bits].
    query_labels: 0/1 labels [q, C] (one-hot or multi-hot).
    database_labels: 0/1 labels [n, C].
    topk: K; None means the whole database.

  Returns:
    The tie-aware mAP as a Python float.

  Examples:
    >>> import numpy as np
    >>> from dahjax import retrieval
    >>> query_codes = np.array([[1, 0, 1, 1], [0, 1, 0, 0]])
    >>> database_codes = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 1]])
    >>> query_labels = np.array([[1, 0], [0, 1]])
    >>> database_labels = np.array([[1, 0], [0, 1], [0, 1], [0, 1]])
    >>> print(round(retrieval.tie_aware_map(
    ...     query_codes, database_codes, query_labels, database_labels), 4))
    0.7593

  References:
    He et al., "Hashing as Tie-Aware Learning to Rank", CVPR 2018, eq. 8.
  """
  return retrieval_metrics(
    query_codes, database_codes, query_labels, database_labels, topk=topk, precision_at=None
  )['map_tie_aware']


def bit_balance(codes) -> float:
  """Computes DAH's bit balance: the mean over bits of max(#ones, #zeros) / min(#ones, #zeros).

  1.0 is perfectly balanced. The paper's Sec. IV.E speaks of "the ratio of 1 and 0
  values at each bit index" without saying which way round or how the bits are
  combined; the larger count over the smaller (so the ratio is >= 1, as all of Table
  5's values are) averaged over the bits is that reading. A bit that is constant over
  all codes makes the ratio infinite (see `bit_balance_summary`).

  Args:
    codes: 0/1 codes [n, bits].

  Returns:
    The mean ratio as a Python float (inf when a bit is constant).

  Examples:
    >>> import numpy as np
    >>> from dahjax import retrieval
    >>> codes = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    >>> print(round(retrieval.bit_balance(codes), 4))  # per bit 1, 1, 3
    1.6667

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. IV.E and Table 5.
  """
  return float(np.mean(per_bit_balance(codes)))


def bit_balance_summary(codes) -> dict[str, float | int | None]:
  """Summarises the bit balance of `codes` in values strict JSON can hold.

  Args:
    codes: 0/1 codes [n, bits].

  Returns:
    {'bit_balance': the mean of `per_bit_balance` as a Python float, or None when a bit
    is constant (the ratio is then infinite, which strict JSON cannot hold),
    'constant_bits': how many bits are the same in every code, an int}.

  Examples:
    >>> import numpy as np
    >>> from dahjax import retrieval
    >>> codes = np.array([[1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 0, 1], [0, 0, 1, 1]])
    >>> print(retrieval.bit_balance_summary(codes))
    {'bit_balance': None, 'constant_bits': 1}
    >>> summary = retrieval.bit_balance_summary(codes[:, :3])
    >>> print(round(summary['bit_balance'], 4), summary['constant_bits'])
    1.6667 0

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. IV.E and Table 5.
  """
  per_bit = per_bit_balance(codes)
  constant = int(np.sum(~np.isfinite(per_bit)))
  return {
    'bit_balance': None if constant else float(np.mean(per_bit)),
    'constant_bits': constant,
  }


def per_bit_balance(codes) -> np.ndarray:
  """Computes max(#ones, #zeros) / min(#ones, #zeros) of each bit over the codes.

  Args:
    codes: 0/1 codes [n, bits].

  Returns:
    float64 ratios [bits], each >= 1; inf for a bit that is constant over all codes.

  Examples:
    >>> import numpy as np
    >>> from dahjax import retrieval
    >>> codes = np.array([[1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 0, 1], [0, 0, 1, 1]])
    >>> print(retrieval.per_bit_balance(codes))
    [ 1.  1.  3. inf]

  References:
    Li et al., "Image Retrieval Using a Deep Attention-Based Hash", IEEE Access
    2020, Sec. IV.E and Table 5.
  """
  codes = np.asarray(codes)
  ones = codes.sum(axis=0).astype(np.float64)
  zeros = len(codes) - ones
  with np.errstate(divide='ignore'):
    return np.maximum(ones, zeros) / np.minimum(ones, zeros)
