"""Tests of dahjax.hash_index: the index against the linear scan, persistence, errors."""

import os

import numpy as np
import pytest

from dahjax import hash_index


def make_codes(n, bits, seed=0):
  """Random codes with a quarter of the rows duplicated, as trained codes often are."""
  rng = np.random.default_rng(seed)
  codes = rng.integers(0, 2, size=(n, bits), dtype=np.uint8)
  copies = n // 4
  codes[n - copies :] = codes[rng.integers(0, n - copies, copies)]
  return codes


def make_queries(codes, seed=1):
  """Database items, items with 1 to 3 bits flipped, and random codes."""
  rng = np.random.default_rng(seed)
  n, bits = codes.shape
  near = codes[rng.integers(0, n, 12)].copy()
  for row, flips in zip(near, rng.integers(1, 4, len(near))):
    row[rng.choice(bits, min(flips, bits), replace=False)] ^= 1
  far = rng.integers(0, 2, size=(4, bits), dtype=np.uint8)
  return np.concatenate([codes[:4], codes[-4:], near, far])


@pytest.fixture
def index_path(monkeypatch):
  """Makes the index answer every query from its tables, never by the scan fallback."""
  monkeypatch.setattr(hash_index, '_KEY_COST', 0)
  monkeypatch.setattr(hash_index, '_CANDIDATE_COST', 0)


def assert_same(results, expected):
  assert len(results) == len(expected)
  for (ids, dist), (ref_ids, ref_dist) in zip(results, expected):
    assert ids.dtype == np.int64 and dist.dtype == np.int64
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(dist, ref_dist)


def test_linear_scan_matches_a_loop():
  codes = make_codes(60, 12)
  query = codes[3] ^ np.eye(12, dtype=np.uint8)[0]
  dist = np.array([np.sum(query != c) for c in codes])
  expected = sorted((d, i) for i, d in enumerate(dist) if d <= 3)
  ids, distances = hash_index.linear_scan(codes, query, 3)
  assert [(d, i) for i, d in zip(ids, distances)] == expected


@pytest.mark.parametrize('bits,k', [(6, 1), (6, 25), (12, 7), (70, 30), (12, 500)])
def test_nearest_matches_a_sort_of_every_pair(bits, k):
  # 6 bits over 300 codes: many ties at every distance, so the tie order is tested.
  codes = make_codes(300, bits, seed=bits)
  queries = make_queries(codes)
  results = hash_index.HammingIndex(codes).nearest(queries, k)
  expected = []
  for q in queries:
    pairs = sorted((int(np.sum(q != c)), i) for i, c in enumerate(codes))[:k]
    expected.append((np.array([i for _, i in pairs]), np.array([d for d, _ in pairs])))
  assert_same(results, expected)


def test_nearest_rejects_a_bad_k():
  index = hash_index.HammingIndex(make_codes(10, 8))
  for k in (0, -1, 2.5, True):
    with pytest.raises(ValueError, match='positive integer'):
      index.nearest(make_codes(1, 8), k)


@pytest.mark.parametrize('bits', [8, 16, 33, 64])
def test_index_equals_linear_scan(bits, index_path):
  del index_path
  codes = make_codes(400, bits, seed=bits)
  queries = make_queries(codes)
  index = hash_index.HammingIndex(codes)
  for radius in range(5):
    expected = [hash_index.linear_scan(codes, q, radius) for q in queries]
    assert_same(index.search_batch(queries, radius), expected)
    assert_same([index.search(q, radius) for q in queries[::5]], expected[::5])
    # The tables were used: fewer candidates than items.
    assert np.mean(index.count_candidates(queries, radius)) < len(codes)


@pytest.mark.parametrize('bits,num_tables', [(16, 1), (16, 16), (33, 2), (64, 5), (130, 3)])
def test_any_number_of_tables(bits, num_tables, index_path, monkeypatch):
  del index_path
  # Small batches of lookups and of candidates exercise the splitting of a batch.
  monkeypatch.setattr(hash_index, '_LOOKUP_CELLS', 50)
  monkeypatch.setattr(hash_index, '_PAIR_CELLS', 7)
  codes = make_codes(200, bits)
  queries = make_queries(codes)
  index = hash_index.HammingIndex(codes, num_tables=num_tables)
  assert index.num_tables == num_tables
  for radius in (0, 2, 5):
    assert_same(
      index.search_batch(queries, radius),
      [hash_index.linear_scan(codes, q, radius) for q in queries],
    )


def test_default_costs_use_tables_and_fall_back_to_the_scan():
  codes = make_codes(4096, 32)
  queries = make_queries(codes)
  index = hash_index.HammingIndex(codes)
  for radius in (1, 3, 32, 40):
    assert_same(
      index.search_batch(queries, radius),
      [hash_index.linear_scan(codes, q, radius) for q in queries],
    )
  assert np.mean(index.count_candidates(queries, 1)) < 20
  # Radius 32 would look up most keys: the whole database is scanned.
  np.testing.assert_array_equal(index.count_candidates(queries, 32), len(codes))
  assert len(index.search(queries[0], 40)[0]) == len(codes)


def test_empty_batch():
  index = hash_index.HammingIndex(make_codes(50, 16))
  assert index.search_batch(np.zeros((0, 16), np.uint8), 1) == []
  assert index.count_candidates(np.zeros((0, 16), np.uint8), 1).shape == (0,)


def test_crowded_buckets_fall_back_to_the_scan():
  codes = np.repeat(make_codes(4, 24), 500, axis=0)
  index = hash_index.HammingIndex(codes)
  queries = make_queries(codes)
  np.testing.assert_array_equal(index.count_candidates(codes[:2], 0), len(codes))
  assert_same(
    index.search_batch(queries, 2), [hash_index.linear_scan(codes, q, 2) for q in queries]
  )


def test_save_load_round_trip(tmp_path, index_path):
  del index_path
  codes = make_codes(300, 40)
  queries = make_queries(codes)
  index = hash_index.HammingIndex(codes, num_tables=4)
  path = str(tmp_path / 'index.npz')
  index.save(path)
  index.save(path)  # Overwrites in place.
  assert os.listdir(tmp_path) == ['index.npz']  # No temporary file left behind.
  loaded = hash_index.HammingIndex.load(path)
  assert (len(loaded), loaded.bits, loaded.num_tables) == (300, 40, 4)
  for radius in (0, 3):
    assert_same(loaded.search_batch(queries, radius), index.search_batch(queries, radius))


def test_load_errors_name_the_file_and_the_fix(tmp_path):
  missing = str(tmp_path / 'missing.npz')
  with pytest.raises(FileNotFoundError, match='missing.npz'):
    hash_index.HammingIndex.load(missing)
  path = str(tmp_path / 'index.npz')
  hash_index.HammingIndex(make_codes(300, 40)).save(path)
  with open(path, 'rb') as f:
    data = f.read()
  truncated = str(tmp_path / 'truncated.npz')
  with open(truncated, 'wb') as f:
    f.write(data[: len(data) // 2])
  other = str(tmp_path / 'other.npz')
  np.savez(other, words=np.zeros((3, 1), np.uint64))
  text = str(tmp_path / 'text.npz')
  with open(text, 'w') as f:
    f.write('not an index')
  for bad in (truncated, other, text):
    with pytest.raises(ValueError, match=f'{os.path.basename(bad)}.*Rebuild the index'):
      hash_index.HammingIndex.load(bad)


def test_bits_mismatch_says_both_lengths():
  index = hash_index.HammingIndex(make_codes(50, 32))
  with pytest.raises(ValueError, match='16 bits.*32-bit'):
    index.search(np.zeros(16, np.uint8), 1)
  with pytest.raises(ValueError, match='16 bits.*32'):
    hash_index.linear_scan(make_codes(50, 32), np.zeros(16, np.uint8), 1)


@pytest.mark.parametrize(
  'codes,message',
  [
    (np.zeros(8, np.uint8), '2-D'),
    (np.zeros((2, 3, 4), np.uint8), '2-D'),
    (np.full((4, 8), 2, np.uint8), 'only 0 and 1'),
    (np.full((4, 8), 0.5), 'only 0 and 1'),
    (np.zeros((4, 256), np.uint8), '256 bits'),
    (np.zeros((4, 0), np.uint8), '0 bits'),
    (np.zeros((0, 8), np.uint8), 'empty'),
  ],
)
def test_bad_codes_raise(codes, message):
  with pytest.raises(ValueError, match=message):
    hash_index.HammingIndex(codes)


def test_bad_arguments_raise():
  codes = make_codes(50, 16)
  index = hash_index.HammingIndex(codes)
  for radius in (-1, 1.5, True):
    with pytest.raises(ValueError, match='non-negative integer'):
      index.search(codes[0], radius)
  with pytest.raises(ValueError, match='non-negative integer'):
    hash_index.linear_scan(codes, codes[0], -1)
  with pytest.raises(ValueError, match='search_batch'):
    index.search(codes[:2], 1)
  for num_tables in (0, 17, 2.0):
    with pytest.raises(ValueError, match='num_tables'):
      hash_index.HammingIndex(codes, num_tables=num_tables)
  with pytest.raises(ValueError, match='num_tables.*from 3'):
    hash_index.HammingIndex(make_codes(10, 130), num_tables=2)
