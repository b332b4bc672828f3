"""results/class_bound.py against codes whose clusters are known."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _average_precision(query, query_class, database, database_class):
  """AP@ALL by a plain loop: rank by Hamming distance, ties by database index."""
  distances = [int((query != code).sum()) for code in database]
  order = sorted(range(len(database)), key=lambda i: (distances[i], i))
  hits, precisions = 0, []
  for rank, i in enumerate(order, start=1):
    if database_class[i] == query_class:
      hits += 1
      precisions.append(hits / rank)
  return sum(precisions) / len(precisions)


def _class_bound(path):
  return subprocess.run(
    [sys.executable, os.path.join(ROOT, 'results', 'class_bound.py'), str(path)],
    capture_output=True,
    text=True,
    env={**os.environ, 'PYTHONPATH': ROOT},
  )


def test_class_bound_splits_queries_by_their_nearest_centre(tmp_path):
  centres = np.array([[0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], np.uint8)
  database_class = np.repeat(np.arange(3), 10)
  database = centres[database_class]
  # Three queries per class at their own centre, one at the next class's centre.
  query_class = np.repeat(np.arange(3), 4)
  at = np.array([c if i % 4 else (c + 1) % 3 for i, c in enumerate(query_class)])
  query = centres[at]
  eye = np.eye(3, dtype=np.uint8)
  path = tmp_path / 'codes.npz'
  np.savez(
    path,
    query_codes=query,
    database_codes=database,
    query_labels=eye[query_class],
    database_labels=eye[database_class],
  )
  result = _class_bound(path)
  assert result.returncode == 0, result.stderr
  out = result.stdout
  cells = out.strip().splitlines()[-1].strip('|').split('|')
  database_share, query_share, map_all, map_own, map_other = (float(c) for c in cells[1:])
  aps = np.array(
    [_average_precision(q, c, database, database_class) for q, c in zip(query, query_class)]
  )
  own = at == query_class
  assert database_share == 1.0
  assert query_share == 0.75
  np.testing.assert_allclose(map_all, aps.mean(), atol=1e-4)
  np.testing.assert_allclose(map_own, aps[own].mean(), atol=1e-4)
  np.testing.assert_allclose(map_other, aps[~own].mean(), atol=1e-4)
  assert map_own == 1.0 and map_other < 0.5


def test_class_bound_refuses_multi_label_codes(tmp_path):
  path = tmp_path / 'codes.npz'
  labels = np.array([[1, 1], [0, 1]], np.uint8)
  codes = np.array([[0, 1], [1, 0]], np.uint8)
  np.savez(
    path,
    query_codes=codes,
    database_codes=codes,
    query_labels=labels,
    database_labels=labels,
  )
  result = _class_bound(path)
  assert result.returncode != 0
  assert 'not single-label' in result.stderr
  assert 'Traceback' not in result.stderr
