"""Retrieval with binary codes: bit packing, Hamming distance and ranking metrics.

Codes enter as 0/1 arrays [n, bits] and labels as 0/1 arrays [n, classes] (one-hot or
multi-hot); a database item is relevant to a query when they share a label. Codes are
packed into uint32 words and compared with XOR + popcount.

Ranking follows the standard protocol: the database is sorted by Hamming distance with
ties broken by database index (a stable sort), and AP@K averages precision@rank over
the relevant items in the top K (a query with none there scores 0).

Work is done in chunks of queries, each against the whole database, so memory grows
with the database size, never with queries x database at once. Distances and relevance
are jitted kernels compiled once per chunk shape; ranking uses NumPy's stable sort,
which is a radix sort on the uint8 distances.
"""

from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

# Query chunks hold at most this many query x database cells.
_CHUNK_CELLS = 1 << 25


@jax.jit
def pack_codes(codes: jax.Array) -> jax.Array:
  """Packs 0/1 codes [n, bits] into uint32 words [n, ceil(bits / 32)], bit b of word w = code[32 w + b]."""
  n, bits = codes.shape
  words = -(-bits // 32)
  padded = jnp.zeros((n, words * 32), jnp.uint32).at[:, :bits].set(
      codes.astype(jnp.uint32) & 1)
  shifts = jnp.arange(32, dtype=jnp.uint32)
  return jnp.sum(padded.reshape(n, words, 32) << shifts, axis=-1, dtype=jnp.uint32)


@jax.jit
def hamming_distance(query_words: jax.Array, database_words: jax.Array) -> jax.Array:
  """Hamming distances [q, n] (int32) between packed codes [q, w] and [n, w]."""
  xor = jnp.bitwise_xor(query_words[:, None, :], database_words[None, :, :])
  return jnp.sum(jax.lax.population_count(xor), axis=-1, dtype=jnp.int32)


@jax.jit
def _distances_and_relevance(query_words, database_words, query_labels, database_labels):
  # uint8 holds every distance of codes up to 255 bits and makes the sort a radix sort.
  dist = hamming_distance(query_words, database_words).astype(jnp.uint8)
  relevant = (query_labels @ database_labels.T) > 0
  return dist, relevant


def _check_inputs(query_codes, database_codes, query_labels, database_labels):
  query_codes, database_codes = np.asarray(query_codes), np.asarray(database_codes)
  query_labels, database_labels = np.asarray(query_labels), np.asarray(database_labels)
  for name, a in (('query_codes', query_codes), ('database_codes', database_codes),
                  ('query_labels', query_labels), ('database_labels', database_labels)):
    if a.ndim != 2:
      raise ValueError(f'{name} must be a 2-D 0/1 array [n, bits or classes], '
                       f'got shape {a.shape}.')
  if query_codes.shape[1] != database_codes.shape[1]:
    raise ValueError(f'Query codes have {query_codes.shape[1]} bits but database codes '
                     f'have {database_codes.shape[1]}: encode both with the same model.')
  if query_codes.shape[1] > 255:
    raise ValueError(f'Codes of {query_codes.shape[1]} bits are not supported (max 255).')
  if len(database_codes) == 0:
    raise ValueError('The database is empty: nothing to retrieve.')
  if len(query_codes) == 0:
    raise ValueError('There are no queries.')
  for codes, labels, which in ((query_codes, query_labels, 'query'),
                               (database_codes, database_labels, 'database')):
    if len(codes) != len(labels):
      raise ValueError(f'{which} codes have {len(codes)} rows but {which} labels have '
                       f'{len(labels)}: they must describe the same items.')
  if query_labels.shape[1] != database_labels.shape[1]:
    raise ValueError(f'Query labels have {query_labels.shape[1]} classes but database '
                     f'labels have {database_labels.shape[1]}.')
  return query_codes, database_codes, query_labels, database_labels


def _ranked_chunks(query_codes, database_codes, query_labels, database_labels,
                   ) -> Iterator[tuple[np.ndarray, ...]]:
  """Yields (relevance in ranked order, distances, relevance) per query chunk."""
  n_db = len(database_codes)
  chunk = max(1, min(len(query_codes), _CHUNK_CELLS // n_db))
  db_words = pack_codes(jnp.asarray(database_codes))
  q_words = pack_codes(jnp.asarray(query_codes))
  db_labels = jnp.asarray(database_labels, jnp.float32)
  q_labels = jnp.asarray(query_labels, jnp.float32)
  n_q = len(query_codes)
  for start in range(0, n_q, chunk):
    stop = min(start + chunk, n_q)
    # Pad the last chunk to the full chunk size so the kernel compiles once.
    idx = np.minimum(np.arange(start, start + chunk), n_q - 1)
    dist, rel = _distances_and_relevance(q_words[idx], db_words, q_labels[idx], db_labels)
    dist, rel = np.asarray(dist)[:stop - start], np.asarray(rel)[:stop - start]
    order = np.argsort(dist, axis=1, kind='stable')
    yield np.take_along_axis(rel, order, axis=1), dist, rel


def _average_precision(sorted_rel: np.ndarray, topk: int) -> np.ndarray:
  rel = sorted_rel[:, :topk]
  hits = np.cumsum(rel, axis=1, dtype=np.int32)
  ranks = np.arange(1, rel.shape[1] + 1, dtype=np.float64)
  n_rel = hits[:, -1]
  precision_sum = np.sum(np.where(rel, hits / ranks, 0.0), axis=1)
  return np.where(n_rel > 0, precision_sum / np.maximum(n_rel, 1), 0.0)


def _check_topk(topk: int | None, n_db: int, what: str) -> int:
  if topk is None:
    return n_db
  if not 1 <= topk <= n_db:
    raise ValueError(f'{what}={topk} must lie in [1, {n_db}] (the database size); '
                     'use None for the whole database.')
  return topk


def retrieval_metrics(query_codes, database_codes, query_labels, database_labels, *,
                      topk: int | None = None, precision_at: int | None = 1000,
                      radius: int = 2) -> dict[str, float]:
  """mAP@topk, precision of the top `precision_at` and precision within `radius` in one pass.

  Args:
    query_codes: 0/1 codes [q, bits].
    database_codes: 0/1 codes [n, bits].
    query_labels: 0/1 labels [q, C].
    database_labels: 0/1 labels [n, C].
    topk: K of mAP@K; None ranks the whole database (mAP@ALL).
    precision_at: N of precision@N; None skips it, and N larger than the database is
      clipped to the database size.
    radius: Hamming radius r of the radius precision (items at distance <= r; a query
      retrieving nothing scores 0).

  Returns:
    {'map', 'precision_at_<N>', 'precision_radius_<r>'} as Python floats.
  """
  q, d, ql, dl = _check_inputs(query_codes, database_codes, query_labels, database_labels)
  topk = _check_topk(topk, len(d), 'topk')
  n_at = None if precision_at is None else min(precision_at, len(d))
  ap, p_at, p_radius = [], [], []
  for sorted_rel, dist, rel in _ranked_chunks(q, d, ql, dl):
    ap.append(_average_precision(sorted_rel, topk))
    if n_at is not None:
      p_at.append(np.mean(sorted_rel[:, :n_at], axis=1))
    within = dist <= radius
    n_within = within.sum(axis=1)
    n_hit = (within & rel).sum(axis=1)
    p_radius.append(np.where(n_within > 0, n_hit / np.maximum(n_within, 1), 0.0))
  out = {'map': float(np.mean(np.concatenate(ap)))}
  if n_at is not None:
    out[f'precision_at_{precision_at}'] = float(np.mean(np.concatenate(p_at)))
  out[f'precision_radius_{radius}'] = float(np.mean(np.concatenate(p_radius)))
  return out


def mean_average_precision(query_codes, database_codes, query_labels, database_labels,
                           topk: int | None = None) -> float:
  """mAP@topk of Hamming ranking, ties broken by database index.

  Args:
    query_codes: 0/1 codes [q, bits].
    database_codes: 0/1 codes [n, bits].
    query_labels: 0/1 labels [q, C] (one-hot or multi-hot).
    database_labels: 0/1 labels [n, C].
    topk: K; None means the whole database (mAP@ALL).

  Returns:
    mAP as a Python float.
  """
  return retrieval_metrics(query_codes, database_codes, query_labels, database_labels,
                           topk=topk, precision_at=None)['map']


def bit_balance(codes) -> float:
  """Mean over bits of max(#ones, #zeros) / min(#ones, #zeros); 1.0 is perfectly balanced.

  A bit that is constant over all codes makes the ratio infinite (DAH paper, Table 5).
  """
  codes = np.asarray(codes)
  ones = codes.sum(axis=0).astype(np.float64)
  zeros = len(codes) - ones
  with np.errstate(divide='ignore'):
    ratio = np.maximum(ones, zeros) / np.minimum(ones, zeros)
  return float(np.mean(ratio))
