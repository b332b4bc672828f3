"""Evaluation: encode the query and database splits with a state, rank by Hamming
distance, and write the report.

Writes to `<workdir>/eval/`: `metrics.json` (scalar metrics, the precision@N and
radius curves, and the method's name), `codes.npz` (0/1 uint8 codes and 0/1 labels of
queries and database), `pr_curve.json` (precision and recall of the top N, as
DeepHash-pytorch writes them), the plots of `plots.write_plots`, and the learning curve of a
run evaluated during training (`curve.jsonl`, `learning_curve.png`); appends eval_
metrics to `metrics.jsonl`. Only process 0 writes. Evaluation knows nothing of
optimisers: training hands it a model and a state.
"""

import datetime
import json
import os
import time
from typing import Any

from absl import logging
from flax.training import early_stopping
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from dahjax import atomic
from dahjax import checkpoints
from dahjax import encode
from dahjax import losses
from dahjax import models
from dahjax import parallel
from dahjax import plots
from dahjax import progress
from dahjax import retrieval
from dahjax import state as state_lib
from dahjax.data import input_data


def encode_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The encoder's batch and image settings of `config` (`encode.encode_split`'s keywords)."""
  # A multiple of the devices (and processes) the batch is split over.
  unit = int(np.lcm(jax.device_count(), jax.process_count()))
  return dict(
    batch_size=-(-config.eval.batch_size // unit) * unit,
    image_size=config.data.image_size,
    num_threads=config.data.num_threads,
    num_workers=config.data.num_workers,
    transform=config.data.transform,
    resize_size=config.data.resize_size,
    bad_images=config.data.bad_images,
  )


def _variables(state, mesh):
  return jax.device_put(
    {'params': state.params, 'batch_stats': state.batch_stats}, parallel.replicated(mesh)
  )


def classification_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float | None:
  """Share of `predictions` [n] (class indices) equal to single-label 0/1 `labels`
  [n, C]; None for multi-label data, where one top class is not the answer."""
  if not len(labels) or np.any(np.sum(labels, axis=1) != 1):
    return None
  return float(np.mean(predictions == np.argmax(labels, axis=1)))


def classifier_accuracy(
  config, predictions: np.ndarray, labels: np.ndarray
) -> float | None:
  """`classification_accuracy` of the run's classifier; None when its loss does not train
  one (DSH's and most hashing losses read only the codes), its accuracy being chance."""
  if not losses.trains_classifier(config.loss_name):
    return None
  return classification_accuracy(predictions, labels)


def _map_topk(config, data, n_db: int) -> tuple[int | None, int | None]:
  """(K reported, K searched): the protocol's K beyond the database (a small test copy)
  ranks the whole database, which is what the top K then holds; a K set in the config
  must fit."""
  topk = config.eval.topk if config.eval.topk is not None else data.protocol.map_topk
  search_k = min(topk, n_db) if topk is not None and config.eval.topk is None else topk
  return topk, search_k


CURVE_FILE = 'curve.jsonl'
# Precision and recall of the top N, in the form DeepHash-pytorch's plotting script
# (utils/precision_recall_curve.py) reads: {"index": [N - 1, ...], "P": [...], "R": [...]}.
PR_CURVE_FILE = 'pr_curve.json'
CURVE_PLOT = 'learning_curve.png'
CURVE_SEED = 0  # Fixed, so that the curves of runs on the same splits share queries.


def curve_queries(num_queries: int, count: int, seed: int = CURVE_SEED) -> np.ndarray:
  """Rows (sorted) of the fixed query subset of the learning curve: `count` drawn
  without replacement with `seed`; every query when `count` is 0 or covers them all."""
  if count <= 0 or count >= num_queries:
    return np.arange(num_queries)
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(num_queries, size=count, replace=False))


def curve_metrics(
  config, data, q_rows, q_codes, q_pred, db_codes, q_readable=None, db_readable=None
) -> dict[str, Any]:
  """The learning curve's metrics of query rows `q_rows` against the whole database,
  leaving out the images marked unreadable (`q_readable`, `db_readable`: bool masks)."""
  q_ok = np.ones(len(q_rows), bool) if q_readable is None else q_readable
  db_ok = np.ones(len(db_codes), bool) if db_readable is None else db_readable
  q_idx, db_idx = data.splits['query'][q_rows][q_ok], data.splits['database'][db_ok]
  q_codes, q_pred, db_codes = q_codes[q_ok], q_pred[q_ok], db_codes[db_ok]
  _, search_k = _map_topk(config, data, len(db_idx))
  q_labels = data.pool.labels[q_idx]
  metrics = retrieval.retrieval_metrics(
    q_codes,
    db_codes,
    q_labels,
    data.pool.labels[db_idx],
    topk=search_k,
    precision_at=config.eval.precision_at,
    radius=config.eval.radius,
  )
  metrics.update(retrieval.bit_balance_summary(db_codes))
  metrics['accuracy'] = classifier_accuracy(config, q_pred, q_labels)
  metrics['num_queries'] = len(q_idx)
  return metrics


def check_plateau(evaluations: int, eval_every_steps: int) -> None:
  """Raises ValueError unless a plateau rule of `evaluations` points can watch a learning
  curve with a point every `eval_every_steps` steps."""
  if evaluations < 0:
    raise ValueError(
      f'plateau.evaluations={evaluations} must be >= 0 (0: no early stop at a plateau).'
    )
  if evaluations > 0 and eval_every_steps <= 0:
    raise ValueError(
      f'plateau.evaluations={evaluations} watches the learning curve, which this run '
      'does not record: set eval_every_steps > 0 (for example one epoch of steps), or '
      'plateau.evaluations=0.'
    )


def plateau_reached(maps, min_delta: float, evaluations: int) -> bool:
  """Whether the last `evaluations` of the curve's mAPs `maps` (in step order) all
  gained no more than `min_delta` over the best point before them.

  A point counts as a gain only when it beats the best gaining point so far by more than
  `min_delta`, so a slow rise of many small steps still counts once it adds up. Flax's
  `EarlyStopping` on -mAP keeps that count; its own `should_stop` stays set after a
  later gain, so the count is read instead: the rule looks at the latest points only.
  """
  if evaluations <= 0:
    return False
  rule = early_stopping.EarlyStopping(min_delta=min_delta)
  for m in maps:
    rule = rule.update(-float(m))
  return rule.patience_count >= evaluations


class LearningCurve:
  """Evaluation during training on a fixed query subset against the whole database.

  Each point (mAP, precision@N, bit balance, the classifier's accuracy on those
  queries, and the mean training loss terms since the previous point) is appended to
  `<workdir>/eval/curve.jsonl` and, prefixed `curve_`, to metrics.jsonl/TensorBoard,
  and `eval/learning_curve.png` is redrawn. It follows the run; the number a run reports
  is always the full evaluation of its last checkpoint, never a point chosen here (the
  queries are the test set).
  """

  def __init__(
    self, config, workdir: str, *, data, model, mesh, writer, steps_per_epoch: int
  ):
    self._config, self._data, self._mesh, self._writer = config, data, mesh, writer
    self._steps_per_epoch = steps_per_epoch
    self._dir = os.path.join(workdir, 'eval')
    self.rows = curve_queries(len(data.splits['query']), config.eval.curve_queries)
    self._encoder = encode.make_encoder(
      model, mesh, encode.encode_chunk_size(config.eval.chunk_size), with_predictions=True
    )

  def evaluate(self, state, step: int, train_means: dict[str, float]) -> dict[str, Any]:
    """Encodes the database and the curve's queries with `state` and records a point."""
    start = time.monotonic()
    variables, kwargs = _variables(state, self._mesh), encode_settings(self._config)
    splits, pool = self._data.splits, self._data.pool
    (db_codes, _), db_ok, _ = encode.encode_split(
      self._encoder, variables, pool, splits['database'], name='database (curve)', **kwargs
    )
    (q_codes, q_pred), q_ok, _ = encode.encode_split(
      self._encoder,
      variables,
      pool,
      splits['query'][self.rows],
      name='queries (curve)',
      **kwargs,
    )
    return self.record(
      step,
      q_codes,
      q_pred,
      db_codes,
      train_means,
      seconds=time.monotonic() - start,
      q_readable=q_ok,
      db_readable=db_ok,
    )

  def has_point(self, step: int) -> bool:
    """Whether the curve already holds a point of step `step`, as process 0's copy of
    curve.jsonl says (the same answer on every process, since a point takes all of them)."""
    path = os.path.join(self._dir, CURVE_FILE)
    found = jax.process_index() == 0 and os.path.exists(path)
    found = found and any(p['step'] == step for p in read_curve(path))
    if jax.process_count() > 1:
      found = bool(multihost_utils.broadcast_one_to_all(np.int32(found)))
    return bool(found)

  def reached_plateau(self, step: int, min_delta: float, evaluations: int) -> bool:
    """`plateau_reached` on the curve's points up to step `step`, as process 0's copy
    of curve.jsonl says (the same answer on every process)."""
    path = os.path.join(self._dir, CURVE_FILE)
    reached = False
    if jax.process_index() == 0 and os.path.exists(path):
      maps = [p['map'] for p in read_curve(path) if p['step'] <= step]
      reached = plateau_reached(maps, min_delta, evaluations)
    if jax.process_count() > 1:
      reached = bool(multihost_utils.broadcast_one_to_all(np.int32(reached)))
    return bool(reached)

  def record(
    self,
    step: int,
    q_codes,
    q_pred,
    db_codes,
    train_means,
    *,
    seconds: float,
    q_readable=None,
    db_readable=None,
  ) -> dict[str, Any]:
    """Records the point of step `step` from the curve queries' codes and predictions
    (the rows marked unreadable left out)."""
    metrics = curve_metrics(
      self._config,
      self._data,
      self.rows,
      q_codes,
      q_pred,
      db_codes,
      q_readable,
      db_readable,
    )
    point = {
      'step': step,
      'epoch': step / self._steps_per_epoch,
      **metrics,
      'seconds': seconds,
      **{f'train_{k}': v for k, v in train_means.items()},
    }
    self._writer.write(
      step,
      {
        f'curve_{k}': v
        for k, v in point.items()
        if k != 'step' and isinstance(v, (int, float))
      },
    )
    logging.info(
      'Learning curve at step %d (epoch %.2f): mAP %.4f on %d queries.',
      step,
      point['epoch'],
      point['map'],
      point['num_queries'],
    )
    if jax.process_index() == 0:
      os.makedirs(self._dir, exist_ok=True)
      path = os.path.join(self._dir, CURVE_FILE)
      with open(path, 'a') as f:
        f.write(json.dumps(point, allow_nan=False) + '\n')
      try:
        plots.plot_learning_curve(
          read_curve(path), os.path.join(self._dir, CURVE_PLOT), title=self.title()
        )
      except Exception:  # pylint: disable=broad-except
        logging.exception('Could not draw the learning curve; its points are written.')
    return point

  def title(self) -> str:
    c = self._config
    name = method_name(
      c.model_name,
      c.model.attention,
      loss_name=c.loss_name,
      loss=losses.loss_kwargs(c.loss_name, c.loss),
    )
    return f'{name}, {c.model.bits} bits, {len(self.rows):,} queries'


def read_curve(path: str) -> list[dict[str, Any]]:
  """The points of a curve.jsonl, one per step (a step evaluated again after a resume
  keeps its latest point), in step order."""
  points = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        point = json.loads(line)
        points[point['step']] = point
  return [points[s] for s in sorted(points)]


def evaluate(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  state=None,
  model=None,
  data: input_data.Data | None = None,
  mesh=None,
  checkpoint_step: int | None = None,
  writer=None,
  curve: LearningCurve | None = None,
  train_means: dict[str, float] | None = None,
) -> dict[str, Any]:
  """Encodes queries and database with `state` (default: the workdir's checkpoint).

  `state` has `params`, `batch_stats` and `step` (a TrainState or a
  `state_lib.EvalState`); `writer` is the run's `progress.MetricWriter`, one is opened
  when not given. With `curve`, the learning curve's point of this state is taken from
  the same codes.
  """
  data = data or input_data.prepare(config, workdir)
  model = model or state_lib.create_model(config)
  mesh = mesh or parallel.create_mesh()
  if state is None:
    state = state_lib.restore_for_eval(config, workdir, model, checkpoint_step)
  start = time.monotonic()
  variables = _variables(state, mesh)
  encoder = encode.make_encoder(
    model, mesh, encode.encode_chunk_size(config.eval.chunk_size), with_predictions=True
  )
  kwargs = encode_settings(config)

  all_q, all_db = data.splits['query'], data.splits['database']
  logging.info('Encoding %d database and %d query images.', len(all_db), len(all_q))
  (all_db_codes, _), db_ok, db_seconds = encode.encode_split(
    encoder, variables, data.pool, all_db, name='database', **kwargs
  )
  (all_q_codes, all_q_pred), q_ok, _ = encode.encode_split(
    encoder, variables, data.pool, all_q, name='queries', **kwargs
  )
  unreadable = unreadable_report(data.pool, all_q[~q_ok], all_db[~db_ok])
  # An unreadable image is neither ranked nor counted (data.bad_images='skip').
  q_idx, db_idx = all_q[q_ok], all_db[db_ok]
  q_codes, q_pred, db_codes = all_q_codes[q_ok], all_q_pred[q_ok], all_db_codes[db_ok]
  q_labels, db_labels = data.pool.labels[q_idx], data.pool.labels[db_idx]

  topk, search_k = _map_topk(config, data, len(db_idx))
  metrics = retrieval.retrieval_metrics(
    q_codes,
    db_codes,
    q_labels,
    db_labels,
    topk=search_k,
    precision_at=config.eval.precision_at,
    radius=config.eval.radius,
    curves=True,
    topn_pr_curve=True,
  )
  topn_pr_curve = metrics.pop('topn_pr_curve')
  attention = models.model_kwargs(config).get('attention')  # None: no such option.
  metrics.update(retrieval.bit_balance_summary(db_codes))
  metrics.update(
    {
      'accuracy': classifier_accuracy(config, q_pred, q_labels),
      'encode_us_per_image': 1e6 * db_seconds / len(db_idx),
      'bits': int(q_codes.shape[1]),
      'protocol': config.data.protocol,
      'map_topk': 'ALL' if topk is None else int(topk),
      'num_queries': len(q_idx),
      'num_database': len(db_idx),
      **unreadable,
      'step': int(state.step),
      **run_budget(config, workdir, int(state.step)),
      'model': config.model_name,
      'attention': attention,
      'method': method_name(
        config.model_name,
        attention,
        loss_name=config.loss_name,
        loss=losses.loss_kwargs(config.loss_name, config.loss),
      ),
    }
  )
  scalars = {
    k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != 'step'
  }
  if jax.process_index() == 0:
    write_outputs(workdir, metrics, q_codes, db_codes, q_labels, db_labels)
    atomic.write_json(os.path.join(workdir, 'eval', PR_CURVE_FILE), topn_pr_curve)
  own_writer = writer is None
  writer = writer or progress.MetricWriter(workdir)
  writer.write(metrics['step'], {f'eval_{k}': v for k, v in scalars.items()})
  if curve is not None:
    curve.record(
      metrics['step'],
      all_q_codes[curve.rows],
      all_q_pred[curve.rows],
      all_db_codes,
      train_means or {},
      seconds=time.monotonic() - start,
      q_readable=q_ok[curve.rows],
      db_readable=db_ok,
    )
  if own_writer:
    writer.close()
  logging.info('Evaluation: %s', json.dumps(scalars))
  if jax.process_index() == 0:
    plots.write_plots(
      os.path.join(workdir, 'eval'),
      metrics,
      q_codes,
      db_codes,
      q_labels,
      db_labels,
      load_query=lambda i: data.pool.load_image(q_idx[i]),
      load_result=lambda j: data.pool.load_image(db_idx[j]),
      class_names=data.pool.class_names,
    )
  return metrics


def run_budget(
  config: ml_collections.ConfigDict, workdir: str, step: int
) -> dict[str, Any]:
  """What training to step `step` took, as checkpoint `step` of `workdir` recorded it:
  epochs, training wall time in seconds (curve evaluations left out; None when a start
  of the run did not record it) and the hardware of the start that saved it; with the
  UTC date of this evaluation."""
  position = checkpoints.read_data_position(config, workdir, step) if step else None
  position = position or {}
  per_epoch = position.get('steps_per_epoch')
  return {
    'epochs': step / per_epoch if per_epoch else None,
    'train_seconds': position.get('train_seconds'),
    'hardware': position.get('hardware'),
    'evaluated_on': datetime.datetime.now(datetime.UTC).date().isoformat(),
  }


def unreadable_report(pool, queries: np.ndarray, database: np.ndarray) -> dict[str, Any]:
  """metrics.json's account of the query and database images left out as unreadable
  (their counts and files), logged as warnings."""
  report = {
    'num_unreadable_queries': len(queries),
    'num_unreadable_database': len(database),
  }
  if len(queries) or len(database):
    report['unreadable'] = {
      'queries': [pool.location(int(i)) for i in queries],
      'database': [pool.location(int(i)) for i in database],
    }
    for split, where in (('query', queries), ('database', database)):
      for i in where:
        logging.warning(
          'Unreadable %s image left out of the evaluation: %s', split, pool.location(int(i))
        )
  return report


# Paper names of the models' variants; others are named '<model> (<attention>)'.
_METHODS = {
  ('dah_resnet30', 'cbam'): 'DAH',
  ('dah_resnet30', 'none'): 'NoneA-DAH',
  ('dpfah_resnet18', 'stem'): 'DPFAH',
  ('dpfah_resnet18', 'every_block'): 'DPFAH (PFA in every block)',
  ('dpfah_resnet18', 'none'): 'DPFAH (no PFA)',
}
# DPFAH trained on L1 alone (eta = zeta = 0): the rows of its ablation (paper Table 5).
_L1_ONLY = {
  'stem': 'DFAH-2 (ResNet18 + PFA, L1)',
  'none': 'DFAH-1 (ResNet18, L1)',
}


def method_name(
  model_name: str,
  attention: str | None = None,
  *,
  loss_name: str | None = None,
  loss: dict[str, Any] | None = None,
) -> str:
  """The method's name in the papers' tables, e.g. 'DAH', 'NoneA-DAH', 'DPFAH', 'DSH'.

  DAH's and DPFAH's names depend on their backbone's options; any other method is named
  by its loss (`losses.TITLES`).

  Args:
    model_name: the registered model (`config.model_name`).
    attention: `config.model.attention`, None for a model without the option.
    loss_name: `config.loss_name`; with 'dpfah', `loss` tells the ablations apart.
    loss: the loss's settings (`config.loss`).
  """
  if loss_name not in (None, 'dah', 'dpfah'):
    return losses.TITLES[loss_name]  # A baseline: named by its loss, on any backbone.
  if loss_name == 'dpfah' and loss and not loss.get('eta') and not loss.get('zeta'):
    if model_name == 'dpfah_resnet18' and attention in _L1_ONLY:
      return _L1_ONLY[attention]
    return f'{method_name(model_name, attention)}, L1 only'
  if (model_name, attention) in _METHODS:
    return _METHODS[model_name, attention]
  if loss_name is not None:
    return losses.TITLES[loss_name]  # DAH's or DPFAH's loss on another backbone.
  return model_name if attention is None else f'{model_name} ({attention})'


def write_outputs(workdir, metrics, q_codes, db_codes, q_labels, db_labels) -> None:
  """Writes `eval/codes.npz` and `eval/metrics.json` into `workdir`."""
  eval_dir = os.path.join(workdir, 'eval')
  os.makedirs(eval_dir, exist_ok=True)
  with atomic.replacing(os.path.join(eval_dir, 'codes.npz'), keep_extension=True) as tmp:
    np.savez_compressed(
      tmp,
      query_codes=q_codes.astype(np.uint8),
      database_codes=db_codes.astype(np.uint8),
      query_labels=q_labels.astype(np.uint8),
      database_labels=db_labels.astype(np.uint8),
    )
  atomic.write_json(os.path.join(eval_dir, 'metrics.json'), metrics, indent=2)
