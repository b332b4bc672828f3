"""Tests of dahjax.plots on synthetic arrays: valid PNGs, ranking and frame colours."""

import os
import struct

import numpy as np
import pytest

from dahjax import plots

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def png_size(path):
  """(width, height) of a PNG, after checking its signature and header chunk."""
  with open(path, 'rb') as f:
    head = f.read(24)
  assert head[:8] == PNG_SIGNATURE, path
  assert head[12:16] == b'IHDR', path
  return struct.unpack('>II', head[16:24])


def check_png(path, min_width=200, min_height=200):
  assert os.path.getsize(path) > 1000
  width, height = png_size(path)
  assert width >= min_width and height >= min_height
  assert not os.path.exists(path + '.tmp')


def test_curve_plots_write_pngs(tmp_path):
  bits = 12
  precision = np.linspace(0.9, 0.1, bits + 1)
  recall = np.linspace(0.0, 1.0, bits + 1)
  plots.plot_pr_curve(precision, recall, str(tmp_path / 'pr.png'), title='DAH, 12 bits')
  plots.plot_precision_at_n(
    [1, 5, 10, 100, 1000], [0.9, 0.88, 0.85, 0.8, 0.7], str(tmp_path / 'pn.png')
  )
  plots.plot_precision_radius(precision, str(tmp_path / 'radius.png'))
  for name in ('pr.png', 'pn.png', 'radius.png'):
    check_png(str(tmp_path / name))


def test_precision_radius_with_codes_shorter_than_the_radius(tmp_path):
  plots.plot_precision_radius([0.5, 0.6, 0.4], str(tmp_path / 'radius.png'), max_radius=4)
  check_png(str(tmp_path / 'radius.png'))


def test_pr_curve_rejects_mismatched_curves(tmp_path):
  with pytest.raises(ValueError, match='same length'):
    plots.plot_pr_curve([0.5, 0.4], [0.1, 0.2, 0.3], str(tmp_path / 'pr.png'))


def test_radius_labels_merge_points_that_coincide():
  precision = np.array([0.9, 0.8, 0.5, 0.3, 0.3, 0.3])
  recall = np.array([0.1, 0.3, 0.9, 1.0, 1.0, 1.0])
  assert plots.radius_labels(precision, recall) == [
    (0, '0'),
    (1, '1'),
    (2, '2'),
    (3, '3-5'),
  ]


def test_hamming_top_k_breaks_ties_by_database_index():
  query = np.array([[0, 0, 0, 0]])
  database = np.array(
    [
      [1, 1, 0, 0],  # 2
      [0, 0, 0, 1],  # 1
      [1, 0, 0, 0],  # 1
      [0, 0, 0, 0],  # 0
      [1, 1, 1, 1],
    ]
  )  # 4
  indices, distances = plots.hamming_top_k(query, database, k=4)
  np.testing.assert_array_equal(indices, [[3, 1, 2, 0]])
  np.testing.assert_array_equal(distances, [[0, 1, 1, 2]])


def test_hamming_top_k_on_long_codes():
  rng = np.random.default_rng(0)
  q, d = rng.integers(0, 2, (3, 48)), rng.integers(0, 2, (50, 48))
  indices, distances = plots.hamming_top_k(q, d, k=10)
  reference = (q[:, None, :] != d[None, :, :]).sum(-1)
  expected = np.argsort(reference, axis=1, kind='stable')[:, :10]
  np.testing.assert_array_equal(indices, expected)
  np.testing.assert_array_equal(distances, np.take_along_axis(reference, expected, 1))


def test_frames_mark_results_without_a_shared_label_red():
  query_labels = np.array([[1, 0, 0], [0, 1, 1]])  # The second query is multi-label.
  result_labels = np.array([[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 0, 0]]])
  relevant = plots.shares_label(query_labels, result_labels)
  np.testing.assert_array_equal(relevant, [[True, False], [True, False]])
  np.testing.assert_array_equal(
    plots.frame_colors(relevant),
    [
      [plots.RELEVANT_COLOR, plots.IRRELEVANT_COLOR],
      [plots.RELEVANT_COLOR, plots.IRRELEVANT_COLOR],
    ],
  )
  assert plots.RELEVANT_COLOR.endswith('green') and plots.IRRELEVANT_COLOR.endswith('red')


def test_choose_queries_is_seeded_and_bounded():
  first = plots.choose_queries(500, 8, seed=0)
  np.testing.assert_array_equal(first, plots.choose_queries(500, 8, seed=0))
  assert len(set(first)) == 8 and first.max() < 500
  np.testing.assert_array_equal(plots.choose_queries(5, 8), np.arange(5))


def test_retrieval_grid_writes_a_png(tmp_path):
  rng = np.random.default_rng(0)
  q, k = 3, 4
  queries = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(q)]
  # Sizes may differ between images of a folder source.
  results = [
    [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8) for _ in range(k)] for _ in range(q)
  ]
  distances = np.sort(rng.integers(0, 9, (q, k)), axis=1)
  relevant = rng.random((q, k)) < 0.5
  path = str(tmp_path / 'grid.png')
  plots.plot_retrieval_grid(
    queries,
    results,
    distances,
    relevant,
    path,
    query_captions=['cat'] * q,
    result_captions=[['dog'] * k] * q,
    title='DAH, 8 bits',
  )
  check_png(path)


def test_retrieval_grid_checks_shapes(tmp_path):
  image = np.zeros((8, 8, 3), np.uint8)
  with pytest.raises(ValueError, match='2 queries with 3 results'):
    plots.plot_retrieval_grid(
      [image, image],
      [[image] * 3, [image] * 2],
      np.zeros((2, 3), int),
      np.ones((2, 3), bool),
      str(tmp_path / 'grid.png'),
    )
