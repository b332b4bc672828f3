"""Evaluation plots: PR curve, precision@N, precision within a radius, retrieval grid,
learning curve.

Small functions on arrays, independent of models and data sources. Figures are built
on matplotlib's Agg canvas directly (no pyplot), so plotting neither selects a global
backend nor needs a display, and each PNG is written under a temporary name and then
renamed: a reader never sees a half-written image.
"""

from collections.abc import Sequence
import os
from typing import Any

from absl import logging
from matplotlib import figure as figure_lib
from matplotlib.backends import backend_agg
import numpy as np

from dahjax import atomic
from dahjax import retrieval

RELEVANT_COLOR = 'tab:green'
IRRELEVANT_COLOR = 'tab:red'
QUERY_COLOR = 'black'


def new_figure(width: float, height: float) -> figure_lib.Figure:
  """A figure of `width` x `height` inches attached to its own Agg canvas."""
  fig = figure_lib.Figure(figsize=(width, height), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  return fig


def save_png(fig: figure_lib.Figure, path: str) -> None:
  """Writes `fig` to `path` as a PNG: to a temporary file first, then renamed."""
  with atomic.replacing(path) as tmp:
    fig.savefig(tmp, format='png')


def radius_labels(
  precision: np.ndarray, recall: np.ndarray, min_gap: float = 0.03
) -> list[tuple[int, str]]:
  """(radius, label) of the PR points to label: consecutive radii whose points lie
  within `min_gap` of the first one's share one label ('8-12'), so labels never pile up
  where large radii all reach recall 1."""
  labels, first = [], 0
  for r in range(1, len(precision) + 1):
    if (
      r < len(precision)
      and max(abs(precision[r] - precision[first]), abs(recall[r] - recall[first]))
      < min_gap
    ):
      continue
    labels.append((first, str(first) if r - 1 == first else f'{first}-{r - 1}'))
    first = r
  return labels


def plot_pr_curve(
  precision: Sequence[float], recall: Sequence[float], path: str, *, title: str = ''
) -> None:
  """Precision against recall within Hamming radius r = 0..bits, points labelled by r.

  Args:
    precision: mean precision of the items within radius r, for r = 0..bits.
    recall: mean recall within radius r, for r = 0..bits.
    path: the PNG to write.
    title: the figure's title.
  """
  precision, recall = np.asarray(precision), np.asarray(recall)
  if precision.shape != recall.shape or precision.ndim != 1:
    raise ValueError(
      f'precision {precision.shape} and recall {recall.shape} must be '
      'curves of the same length (one point per radius 0..bits).'
    )
  fig = new_figure(6, 5)
  ax = fig.add_subplot()
  ax.plot(recall, precision, marker='o', markersize=3)
  for r, label in radius_labels(precision, recall):
    ax.annotate(
      label,
      (recall[r], precision[r]),
      textcoords='offset points',
      xytext=(4, 4),
      fontsize=7,
    )
  ax.set(
    xlabel='recall (labels: Hamming radius)',
    ylabel='precision',
    xlim=(-0.02, 1.02),
    ylim=(-0.02, 1.02),
    title=title or 'Precision-recall over Hamming radius',
  )
  ax.grid(alpha=0.3)
  fig.tight_layout()
  save_png(fig, path)


def plot_precision_at_n(
  n: Sequence[int], precision: Sequence[float], path: str, *, title: str = ''
) -> None:
  """Precision of the top N retrieved items against N."""
  fig = new_figure(6, 4.5)
  ax = fig.add_subplot()
  ax.plot(n, precision, marker='o', markersize=3)
  ax.set(
    xlabel='number of retrieved items N',
    ylabel='precision@N',
    ylim=(-0.02, 1.02),
    title=title or 'Precision of the top N',
  )
  ax.grid(alpha=0.3)
  fig.tight_layout()
  save_png(fig, path)


def plot_precision_radius(
  precision: Sequence[float], path: str, *, max_radius: int = 4, title: str = ''
) -> None:
  """Bars of the precision within Hamming radius 0..max_radius.

  Args:
    precision: mean precision within radius r for r = 0..bits (a query retrieving
      nothing counts 0).
    path: the PNG to write.
    max_radius: the largest radius shown (clipped to the code length).
    title: the figure's title.
  """
  values = np.asarray(precision)[: max_radius + 1]
  fig = new_figure(5, 4)
  ax = fig.add_subplot()
  radii = np.arange(len(values))
  bars = ax.bar(radii, values, color='tab:blue')
  ax.bar_label(bars, fmt='%.3f', fontsize=8)
  ax.set(
    xlabel='Hamming radius r',
    ylabel='precision within radius r',
    xticks=radii,
    ylim=(0, 1.1),
    title=title or 'Precision within Hamming radius',
  )
  fig.tight_layout()
  save_png(fig, path)


def choose_queries(num_queries: int, count: int = 8, seed: int = 0) -> np.ndarray:
  """`count` query indices (sorted) drawn without replacement with `seed`."""
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(num_queries, size=min(count, num_queries), replace=False))


def hamming_top_k(
  query_codes: np.ndarray, database_codes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
  """The top `k` database items of each query by Hamming distance.

  Ties are broken by database index (a stable sort), the order the retrieval metrics
  use (`dahjax.retrieval`).

  Args:
    query_codes: 0/1 codes [q, bits]; meant for a few queries (memory is q x n).
    database_codes: 0/1 codes [n, bits].
    k: results per query (clipped to n).

  Returns:
    (indices, distances), both int [q, min(k, n)].
  """
  dist = np.asarray(
    retrieval.hamming_distance(
      retrieval.pack_codes(np.asarray(query_codes, np.uint8))[:, None],
      retrieval.pack_codes(np.asarray(database_codes, np.uint8))[None],
    ),
    np.int64,
  )
  order = np.argsort(dist, axis=1, kind='stable')[:, :k]
  return order, np.take_along_axis(dist, order, axis=1)


def shares_label(query_labels: np.ndarray, result_labels: np.ndarray) -> np.ndarray:
  """Whether each result shares a label with its query: bool [q, k].

  Args:
    query_labels: 0/1 labels [q, C].
    result_labels: 0/1 labels [q, k, C] of each query's results.
  """
  query_labels, result_labels = np.asarray(query_labels), np.asarray(result_labels)
  return np.any((query_labels[:, None, :] != 0) & (result_labels != 0), axis=-1)


def frame_colors(relevant: np.ndarray) -> np.ndarray:
  """Frame colour of each result: green when relevant, red when not (same shape)."""
  return np.where(np.asarray(relevant, bool), RELEVANT_COLOR, IRRELEVANT_COLOR)


def _show(ax, image, color: str, caption: str, width: float) -> None:
  ax.imshow(image, interpolation='nearest')
  ax.set_xticks([])
  ax.set_yticks([])
  for spine in ax.spines.values():
    spine.set_color(color)
    spine.set_linewidth(width)
  ax.set_xlabel(caption, fontsize=7, labelpad=2)


def plot_retrieval_grid(
  query_images: Sequence[np.ndarray],
  result_images: Sequence[Sequence[np.ndarray]],
  distances: np.ndarray,
  relevant: np.ndarray,
  path: str,
  *,
  query_captions: Sequence[str] | None = None,
  result_captions: Sequence[Sequence[str]] | None = None,
  title: str = '',
) -> None:
  """One row per query: the query, then its results framed green (relevant) or red.

  Args:
    query_images: q images (HWC, uint8 or float in [0, 1]).
    result_images: q rows of k images, each row in rank order.
    distances: Hamming distances [q, k], written under each result.
    relevant: bool [q, k], whether each result shares a label with its query.
    path: the PNG to write.
    query_captions: a caption under each query (e.g. its class).
    result_captions: q rows of k captions added under each result's distance.
    title: the figure's title.
  """
  distances, relevant = np.asarray(distances), np.asarray(relevant, bool)
  q, k = distances.shape
  if len(query_images) != q or any(len(row) != k for row in result_images):
    raise ValueError(
      f'Expected {q} queries with {k} results each (the shape of '
      f'distances), got {len(query_images)} queries with '
      f'{[len(row) for row in result_images]} results.'
    )
  colors = frame_colors(relevant)
  # A narrow empty column separates each query from its results.
  fig = new_figure(1.1 * (k + 1) + 0.3, 1.25 * q + 0.6)
  grid = fig.add_gridspec(
    q, k + 2, width_ratios=[1, 0.25] + [1] * k, wspace=0.08, hspace=0.35
  )
  for i in range(q):
    caption = 'query' + (f'\n{query_captions[i]}' if query_captions else '')
    _show(fig.add_subplot(grid[i, 0]), query_images[i], QUERY_COLOR, caption, 2)
    for j in range(k):
      caption = f'd={distances[i, j]}'
      if result_captions:
        caption += f'\n{result_captions[i][j]}'
      _show(fig.add_subplot(grid[i, j + 2]), result_images[i][j], colors[i, j], caption, 3)
  if title:
    fig.suptitle(title)
  fig.subplots_adjust(left=0.02, right=0.98, bottom=0.05, top=0.93 if title else 0.98)
  save_png(fig, path)


def plot_learning_curve(points: Sequence[dict], path: str, *, title: str = '') -> None:
  """Retrieval metrics and training loss terms of a run against its epoch.

  Args:
    points: the curve's points in step order, each with 'epoch', 'map', optionally
      'precision_at_<N>' and 'accuracy', and the mean training terms since the
      previous point as 'train_<name>' (evaluate.LearningCurve writes them).
    path: the PNG to write.
    title: the figure's title.
  """
  if not points:
    raise ValueError('A learning curve needs at least one point.')
  epochs = [p['epoch'] for p in points]
  fig = new_figure(7, 6.5)
  top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2, sharex=None)
  metric_names = (
    ['map'] + sorted(k for k in points[-1] if k.startswith('precision_at_')) + ['accuracy']
  )
  for name in metric_names:
    values = [p.get(name) for p in points]
    if all(v is None for v in values):
      continue
    top.plot(
      epochs,
      [np.nan if v is None else v for v in values],
      marker='o',
      markersize=3,
      label={'map': 'mAP'}.get(name, name.replace('_', ' ')),
    )
  top.set(
    ylabel='on the curve queries', ylim=(-0.02, 1.02), title=title or 'Learning curve'
  )
  top.grid(alpha=0.3)
  top.legend(fontsize=8)
  terms = sorted(
    {k for p in points for k in p if k.startswith('train_')}
    - {'train_steps_per_sec', 'train_images_per_sec'}
  )
  for name in terms:
    values = [p.get(name, np.nan) for p in points]
    bottom.plot(epochs, values, marker='o', markersize=3, label=name[len('train_') :])
  if terms:
    bottom.legend(fontsize=8)
  bottom.set(xlabel='epoch', ylabel='mean training loss terms')
  bottom.grid(alpha=0.3)
  fig.tight_layout()
  save_png(fig, path)


GRID_QUERIES = 8
GRID_RESULTS = 10
GRID_SEED = 0  # Fixed, so that grids of different runs on the same splits match.


def write_plots(
  eval_dir: str,
  metrics: dict[str, Any],
  q_codes,
  db_codes,
  q_labels,
  db_labels,
  *,
  load_query,
  load_result,
  class_names: list[str] | None = None,
) -> list[str]:
  """Writes the evaluation's PNGs into `eval_dir`; returns the paths written.

  Args:
    eval_dir: the output directory (it exists).
    metrics: `retrieval_metrics(..., curves=True)` plus 'method', 'bits', 'map_topk'.
    q_codes: 0/1 query codes [q, bits].
    db_codes: 0/1 database codes [n, bits].
    q_labels: 0/1 query labels [q, C].
    db_labels: 0/1 database labels [n, C].
    load_query: query row -> HWC image, for the retrieval grid.
    load_result: database row -> HWC image.
    class_names: names of the label columns, written under the grid's images.

  A plot that fails is logged and skipped: the metrics are already written, and the
  plots must never cost the evaluation. Data whose images cannot be loaded gets no
  retrieval grid.
  """
  title = (
    f'{metrics.get("method", "")}, {metrics["bits"]} bits, '
    f'mAP@{metrics["map_topk"]} {metrics["map"]:.4f}'
  )
  curve, at_n = metrics['radius_curve'], metrics['precision_at_n']
  paths = {
    name: os.path.join(eval_dir, f'{name}.png')
    for name in ('pr_curve', 'precision_at_n', 'precision_radius', 'retrieval_grid')
  }
  jobs = {
    'pr_curve': lambda: plot_pr_curve(
      curve['precision'], curve['recall'], paths['pr_curve'], title=title
    ),
    'precision_at_n': lambda: plot_precision_at_n(
      at_n['n'], at_n['precision'], paths['precision_at_n'], title=title
    ),
    'precision_radius': lambda: plot_precision_radius(
      curve['precision'], paths['precision_radius'], max_radius=4, title=title
    ),
    'retrieval_grid': lambda: _retrieval_grid(
      paths['retrieval_grid'],
      q_codes,
      db_codes,
      q_labels,
      db_labels,
      load_query,
      load_result,
      class_names,
      title,
    ),
  }
  written = []
  for name, job in jobs.items():
    try:
      ok = job() is not False
    except Exception:  # pylint: disable=broad-except
      logging.exception('Could not write %s; the metrics are unaffected.', paths[name])
      ok = False
    if ok:
      written.append(paths[name])
    elif os.path.exists(paths[name]):
      os.remove(paths[name])  # A plot of an earlier evaluation would contradict this one.
  return written


def _retrieval_grid(
  path, q_codes, db_codes, q_labels, db_labels, load_query, load_result, class_names, title
) -> bool:
  """The retrieval grid of a fixed choice of queries; False when images cannot load."""
  queries = choose_queries(len(q_codes), GRID_QUERIES, GRID_SEED)
  results, distances = hamming_top_k(q_codes[queries], db_codes, GRID_RESULTS)
  try:
    query_images = [load_query(int(i)) for i in queries]
    result_images = [[load_result(int(j)) for j in row] for row in results]
  except Exception as e:  # pylint: disable=broad-except
    logging.warning(
      'No retrieval grid: the images cannot be loaded (%s: %s).', type(e).__name__, e
    )
    return False

  def names(labels):
    if not class_names:
      return ''
    present = [class_names[c] for c in np.flatnonzero(labels)]
    # Multi-label images (NUS-WIDE) would otherwise overflow their cell.
    return ', '.join(present[:2]) + (f' +{len(present) - 2}' if len(present) > 2 else '')

  plot_retrieval_grid(
    query_images,
    result_images,
    distances,
    shares_label(q_labels[queries], db_labels[results]),
    path,
    query_captions=[names(q_labels[i]) for i in queries],
    result_captions=[[names(db_labels[j]) for j in row] for row in results],
    title=title,
  )
  return True
