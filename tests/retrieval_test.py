"""Tests of dahjax.retrieval against a plain NumPy reference on codes with many ties."""

import itertools
import json

import numpy as np
import pytest

from dahjax import retrieval


def reference_rankings(q, d, ql, dl):
  """Per query: Hamming distances, stable order by distance, relevance in that order."""
  for i in range(len(q)):
    dist = np.array([np.sum(q[i] != d[j]) for j in range(len(d))])
    order = sorted(range(len(d)), key=lambda j: (dist[j], j))
    rel = np.array([np.dot(ql[i], dl[j]) > 0 for j in order])
    yield dist, rel


def reference_map(q, d, ql, dl, topk=None):
  aps = []
  for _, rel in reference_rankings(q, d, ql, dl):
    rel = rel[: topk or len(d)]
    hits, precisions = 0, []
    for rank, r in enumerate(rel, start=1):
      if r:
        hits += 1
        precisions.append(hits / rank)
    aps.append(np.mean(precisions) if precisions else 0.0)
  return float(np.mean(aps))


def reference_precision_at(q, d, ql, dl, n):
  return float(np.mean([np.mean(rel[:n]) for _, rel in reference_rankings(q, d, ql, dl)]))


def reference_radius_precision(q, d, ql, dl, r):
  out = []
  for i in range(len(q)):
    hits = [np.dot(ql[i], dl[j]) > 0 for j in range(len(d)) if np.sum(q[i] != d[j]) <= r]
    out.append(np.mean(hits) if hits else 0.0)
  return float(np.mean(out))


def random_case(seed, nq=13, nd=57, bits=4, classes=3, multi_label=False):
  rng = np.random.default_rng(seed)
  q = rng.integers(0, 2, size=(nq, bits), dtype=np.uint8)
  d = rng.integers(0, 2, size=(nd, bits), dtype=np.uint8)
  if multi_label:
    ql = (rng.random((nq, classes)) < 0.3).astype(np.uint8)
    dl = (rng.random((nd, classes)) < 0.3).astype(np.uint8)
  else:
    ql = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, nq)]
    dl = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, nd)]
  return q, d, ql, dl


@pytest.mark.parametrize('bits', [4, 8, 33, 64])
def test_pack_and_hamming_match_numpy(bits):
  q, d, _, _ = random_case(bits, bits=bits)
  got = np.asarray(
    retrieval.hamming_distance(
      retrieval.pack_codes(q)[:, None], retrieval.pack_codes(d)[None]
    )
  )
  want = (q[:, None, :] != d[None, :, :]).sum(-1)
  np.testing.assert_array_equal(got, want)
  # The same kernel on NumPy words (as the radius index uses it) gives the same.
  on_host = retrieval.hamming_distance(
    np.asarray(retrieval.pack_codes(q))[:, None], np.asarray(retrieval.pack_codes(d))[None]
  )
  assert isinstance(on_host, np.ndarray) and on_host.dtype == np.uint8
  np.testing.assert_array_equal(on_host, want)
  assert retrieval.pack_codes(q).shape == (len(q), -(-bits // 32))


@pytest.mark.parametrize('bits', [4, 8, 16])
@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('topk', [None, 1, 10, 57])
def test_map_matches_reference(bits, multi_label, topk):
  q, d, ql, dl = random_case(bits * 7 + (topk or 0), bits=bits, multi_label=multi_label)
  got = retrieval.mean_average_precision(q, d, ql, dl, topk=topk)
  np.testing.assert_allclose(got, reference_map(q, d, ql, dl, topk), rtol=1e-12)


@pytest.mark.parametrize('multi_label', [False, True])
def test_all_metrics_match_reference_across_chunks(monkeypatch, multi_label):
  # Small chunks exercise the chunking and the padding of the last chunk.
  monkeypatch.setattr(retrieval, '_CHUNK_CELLS', 57 * 4)
  q, d, ql, dl = random_case(5, bits=6, multi_label=multi_label)
  got = retrieval.retrieval_metrics(q, d, ql, dl, topk=20, precision_at=15, radius=2)
  np.testing.assert_allclose(got['map'], reference_map(q, d, ql, dl, 20), rtol=1e-12)
  np.testing.assert_allclose(
    got['precision_at_15'], reference_precision_at(q, d, ql, dl, 15), rtol=1e-12
  )
  np.testing.assert_allclose(
    got['precision_radius_2'], reference_radius_precision(q, d, ql, dl, 2), rtol=1e-12
  )


def test_known_map_with_ties_broken_by_index():
  # Query 0; database distances 0, 1, 0, 1 -> stable order 0, 2, 1, 3.
  q = np.array([[0, 0]])
  d = np.array([[0, 0], [1, 0], [0, 0], [0, 1]])
  ql = np.array([[1, 0]])
  dl = np.array([[0, 1], [1, 0], [1, 0], [0, 1]])
  # Relevance in rank order: 0, 1, 1, 0 -> AP = (1/2 + 2/3) / 2.
  assert retrieval.mean_average_precision(q, d, ql, dl) == pytest.approx(7 / 12)
  assert retrieval.mean_average_precision(q, d, ql, dl, topk=2) == pytest.approx(1 / 2)
  # Top 1 holds no relevant item: AP 0.
  assert retrieval.mean_average_precision(q, d, ql, dl, topk=1) == 0.0
  m = retrieval.retrieval_metrics(q, d, ql, dl, precision_at=2, radius=0)
  assert m['precision_at_2'] == pytest.approx(0.5)
  assert m['precision_radius_0'] == pytest.approx(0.5)


def test_perfect_codes_score_one():
  d = np.repeat(np.eye(4, dtype=np.uint8), 5, axis=0)
  labels = d.copy()
  m = retrieval.retrieval_metrics(d, d, labels, labels, precision_at=5, radius=0)
  assert m == {
    'map': 1.0,
    'map_tie_aware': 1.0,
    'precision_at_5': 1.0,
    'precision_radius_0': 1.0,
    'recall_radius_0': 1.0,
  }


def test_radius_with_no_results_scores_zero():
  q, d = np.array([[1, 1, 1, 1]]), np.array([[0, 0, 0, 0]])
  labels = np.array([[1]])
  assert (
    retrieval.retrieval_metrics(q, d, labels, labels, precision_at=None)[
      'precision_radius_2'
    ]
    == 0.0
  )


def test_bit_balance():
  codes = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 1], [1, 0, 1]])
  # Bit 0: 2/2 -> 1; bit 1: 3 ones 1 zero -> 3; bit 2: 2/2 -> 1.
  assert retrieval.bit_balance(codes) == pytest.approx(5 / 3)
  assert retrieval.bit_balance(np.ones((3, 2))) == float('inf')


@pytest.mark.parametrize(
  'change,match',
  [
    (lambda a: (a[0][:, :3], *a[1:]), 'bits'),
    (lambda a: (a[0], a[1], a[2][:-1], a[3]), 'rows'),
    (lambda a: (a[0], a[1][:0], a[2], a[3][:0]), 'empty'),
  ],
)
def test_bad_inputs(change, match):
  args = change(random_case(0))
  with pytest.raises(ValueError, match=match):
    retrieval.mean_average_precision(*args)


def test_topk_larger_than_database():
  with pytest.raises(ValueError, match='database size'):
    retrieval.mean_average_precision(*random_case(0), topk=58)


def test_more_bad_inputs():
  q, d, ql, dl = random_case(0)
  with pytest.raises(ValueError, match='2-D'):
    retrieval.mean_average_precision(q[0], d, ql, dl)
  with pytest.raises(ValueError, match='classes'):
    retrieval.mean_average_precision(q, d, ql[:, :2], dl)
  with pytest.raises(ValueError, match='no queries'):
    retrieval.mean_average_precision(q[:0], d, ql[:0], dl)
  with pytest.raises(ValueError, match='precision_at=0'):
    retrieval.retrieval_metrics(q, d, ql, dl, precision_at=0)
  with pytest.raises(ValueError, match='radius=-1'):
    retrieval.retrieval_metrics(q, d, ql, dl, radius=-1)
  with pytest.raises(ValueError, match='at most 255|max 255'):
    retrieval.mean_average_precision(np.zeros((1, 256)), np.zeros((2, 256)), ql[:1], dl[:2])


def tie_orders(dist):
  """Every order of the database that sorts by distance, ties in any order."""
  buckets = [list(np.flatnonzero(dist == v)) for v in sorted(set(dist))]
  for parts in itertools.product(*(itertools.permutations(b) for b in buckets)):
    yield [j for part in parts for j in part]


def reference_tie_aware(q, d, ql, dl, topk=None):
  """Expected precision sum over tie orders / expected relevant count, per query."""
  out = []
  for i in range(len(q)):
    dist = (q[i] != d).sum(1)
    rel = (dl @ ql[i]) > 0
    precision_sums, counts = [], []
    for order in tie_orders(dist):
      r = rel[order][: topk or len(d)]
      hits = np.cumsum(r)
      precision_sums.append(np.sum(np.where(r, hits / np.arange(1, len(r) + 1), 0)))
      counts.append(r.sum())
    out.append(np.mean(precision_sums) / np.mean(counts) if np.mean(counts) else 0.0)
  return float(np.mean(out))


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('topk', [None, 3, 5])
def test_tie_aware_map_matches_enumeration_of_tie_orders(seed, topk):
  # 8 items on 3 bits: big buckets, and few enough orders to enumerate.
  q, d, ql, dl = random_case(seed, nq=3, nd=8, bits=3, multi_label=seed % 2 == 1)
  got = retrieval.tie_aware_map(q, d, ql, dl, topk=topk)
  np.testing.assert_allclose(got, reference_tie_aware(q, d, ql, dl, topk), rtol=1e-10)


def test_tie_aware_known_value():
  # Distances 0, 1, 1, 2 with relevance 1, 0, 1, 1: the tied pair at distance 1 in
  # either order gives AP (1 + 2/3 + 3/4) / 3 or (1 + 2/2 + 3/4) / 3.
  q = np.array([[0, 0]])
  d = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
  ql = np.array([[1, 0]])
  dl = np.array([[1, 0], [0, 1], [1, 0], [1, 0]])
  m = retrieval.retrieval_metrics(q, d, ql, dl, precision_at=None)
  assert m['map'] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
  assert m['map_tie_aware'] == pytest.approx((1 + (2 / 3 + 1) / 2 + 3 / 4) / 3)
  # Without ties both definitions agree.
  d2 = np.array([[0, 0], [1, 0], [1, 1], [1, 1]])
  m2 = retrieval.retrieval_metrics(q, d2[:3], ql, dl[:3], precision_at=None)
  assert m2['map'] == pytest.approx(m2['map_tie_aware'])


def reference_radius(q, d, ql, dl, r):
  precision, recall = [], []
  for i in range(len(q)):
    dist = (q[i] != d).sum(1)
    rel = (dl @ ql[i]) > 0
    inside = dist <= r
    precision.append(rel[inside].mean() if inside.any() else 0.0)
    recall.append(rel[inside].sum() / rel.sum() if rel.any() else 0.0)
  return float(np.mean(precision)), float(np.mean(recall))


@pytest.mark.parametrize('multi_label', [False, True])
def test_curves_match_reference(monkeypatch, multi_label):
  monkeypatch.setattr(retrieval, '_CHUNK_CELLS', 57 * 3)
  q, d, ql, dl = random_case(11, bits=5, multi_label=multi_label)
  m = retrieval.retrieval_metrics(
    q, d, ql, dl, radius=1, curves=True, curve_points=[1, 2, 7, 30, 57, 100]
  )
  assert m['precision_at_n']['n'] == [1, 2, 7, 30, 57]  # 100 clipped to 57.
  for n, p in zip(m['precision_at_n']['n'], m['precision_at_n']['precision']):
    np.testing.assert_allclose(p, reference_precision_at(q, d, ql, dl, n), rtol=1e-12)
  assert m['radius_curve']['radius'] == list(range(6))
  for r in range(6):
    want_p, want_r = reference_radius(q, d, ql, dl, r)
    np.testing.assert_allclose(m['radius_curve']['precision'][r], want_p, rtol=1e-12)
    np.testing.assert_allclose(m['radius_curve']['recall'][r], want_r, rtol=1e-12)
  want_p, want_r = reference_radius(q, d, ql, dl, 1)
  np.testing.assert_allclose(m['precision_radius_1'], want_p, rtol=1e-12)
  np.testing.assert_allclose(m['recall_radius_1'], want_r, rtol=1e-12)
  # Recall within the largest radius is 1 for every query with a relevant item.
  has_rel = ((ql @ dl.T) > 0).any(1)
  np.testing.assert_allclose(m['radius_curve']['recall'][-1], has_rel.mean())


@pytest.mark.parametrize('bits', [8, 64])
def test_partial_sort_for_topk_equals_full_sort(bits):
  """mAP@K sorts only the items up to the K-th item's distance; same as a full sort."""
  q, d, ql, dl = random_case(3, nq=20, nd=400, bits=bits, classes=5)
  for k in (1, 17, 100, 399):
    np.testing.assert_allclose(
      retrieval.mean_average_precision(q, d, ql, dl, topk=k),
      reference_map(q, d, ql, dl, k),
      rtol=1e-12,
    )


def test_per_bit_balance():
  codes = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 1], [1, 0, 1]])
  np.testing.assert_allclose(retrieval.per_bit_balance(codes), [1, 3, 1])


def test_bit_balance_summary_is_strict_json():
  codes = np.array([[0, 1, 1], [1, 1, 0], [0, 1, 0], [1, 1, 0]], np.uint8)
  # Bit 0: 2 ones / 2 zeros -> 1; bit 1 constant -> infinite; bit 2: 3 zeros / 1 one -> 3.
  np.testing.assert_array_equal(retrieval.per_bit_balance(codes), [1.0, np.inf, 3.0])
  summary = retrieval.bit_balance_summary(codes)
  assert summary == {'bit_balance': None, 'constant_bits': 1}
  json.dumps(summary, allow_nan=False)
  assert retrieval.bit_balance_summary(codes[:, [0, 2]]) == {
    'bit_balance': 2.0,
    'constant_bits': 0,
  }


def deephash_topn_pr(q, d, ql, dl):
  """DeepHash-pytorch's `CalcTopMapWithPR` and the points its `validate` keeps
  (utils/tools.py), restated with a stable sort (it uses NumPy's default sort, whose
  order of equal distances is unspecified) and codes in {0, 1}."""
  n = len(d)
  precision, recall = np.zeros((len(q), n)), np.zeros((len(q), n))
  for i in range(len(q)):
    gnd = (ql[i] @ dl.T > 0).astype(np.float64)
    hamm = 0.5 * (q.shape[1] - (2.0 * q[i] - 1) @ (2.0 * d - 1).T)
    gnd = gnd[np.argsort(hamm, kind='stable')]
    if gnd.sum() == 0:
      continue
    cumulative = np.cumsum(gnd)
    precision[i] = cumulative / np.arange(1, n + 1)
    recall[i] = cumulative / gnd.sum()
  keep = np.argwhere(recall[:, -1] == 1.0).squeeze()
  cum_p, cum_r = np.mean(precision[keep], 0), np.mean(recall[keep], 0)
  index = [i * 100 - 1 for i in range(1, n // 100 + 1)]
  top = max(index) if index else -1
  index += [top + i for i in range(1, n - n // 100 * 100 + 1)]
  return {'index': index, 'P': cum_p[index].tolist(), 'R': cum_r[index].tolist()}


@pytest.mark.parametrize('nd', [57, 347])
def test_topn_pr_curve_matches_deephash_pytorch(monkeypatch, nd):
  monkeypatch.setattr(retrieval, '_CHUNK_CELLS', nd * 4)
  q, d, ql, dl = random_case(5, nq=17, nd=nd, bits=6, multi_label=True)
  ql[0] = 0  # A query with no relevant item is left out of the averages.
  m = retrieval.retrieval_metrics(q, d, ql, dl, topn_pr_curve=True)
  want = deephash_topn_pr(q, d, ql, dl)
  assert m['topn_pr_curve']['index'] == want['index']
  np.testing.assert_allclose(m['topn_pr_curve']['P'], want['P'], rtol=1e-12)
  np.testing.assert_allclose(m['topn_pr_curve']['R'], want['R'], rtol=1e-12)
  assert m['topn_pr_curve']['R'][-1] == pytest.approx(1.0)
  # The other metrics are those computed without the curve.
  plain = retrieval.retrieval_metrics(q, d, ql, dl)
  assert {k: m[k] for k in plain} == plain
