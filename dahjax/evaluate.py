"""Evaluation: encode the query and database splits, rank by Hamming distance, report.

Writes to `<workdir>/eval/`: `metrics.json` (scalar metrics, the precision@N and
radius curves, and the method's name), `codes.npz` (0/1 uint8 codes and 0/1 labels of
queries and database) and the plots `pr_curve.png`, `precision_at_n.png`,
`precision_radius.png` and `retrieval_grid.png`; appends eval_ metrics to
`metrics.jsonl`. Only process 0 writes.
"""

import json
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

from dahjax import atomic
from dahjax import checkpoints
from dahjax import parallel
from dahjax import plots
from dahjax import retrieval
from dahjax.data import input_data
from dahjax.data import pipeline


def encode_chunk_size(chunk_size: int) -> int | None:
  """Rows per forward pass on each device: `chunk_size`, or with 0 ('auto') 128 on the
  CPU (a batch of 512 encodes about 1.5x faster as 4 chunks of 128, which stay in
  cache) and the whole per-device batch on accelerators (None)."""
  if chunk_size:
    return chunk_size
  return 128 if jax.default_backend() == 'cpu' else None


def make_encoder(model, mesh, chunk_size: int | None = None,
                 with_predictions: bool = False):
  """A jitted function (variables, images) -> 0/1 uint8 codes.

  Images are placed sharded on the mesh's 'data' axis; variables should be replicated
  on the mesh (`jax.device_put(variables, parallel.replicated(mesh))`). Each device
  runs its rows in chunks of `chunk_size` (None: all at once), the last one padded.
  With `with_predictions` it returns (codes, the classifier's top class [n] int32).
  """
  def codes(variables, images):
    out = model.apply(variables, images, train=False)
    binary = model.binary_codes(out['hash'])
    if with_predictions:
      return binary, jnp.argmax(out['logits'], axis=-1).astype(jnp.int32)
    return binary

  def per_device(variables, images):
    n = images.shape[0]
    if not chunk_size or n <= chunk_size:
      return codes(variables, images)
    chunks = -(-n // chunk_size)
    images = jnp.pad(images, ((0, chunks * chunk_size - n),) + ((0, 0),) * 3)
    out = jax.lax.map(lambda x: codes(variables, x),
                      images.reshape(chunks, chunk_size, *images.shape[1:]))
    return jax.tree.map(lambda o: o.reshape(chunks * chunk_size, *o.shape[2:])[:n], out)

  encode = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P('data')),
                                 out_specs=P('data')))

  def encode_global(variables, local_images):
    # Each process passes its own rows of the global batch; every process gets all codes.
    images = parallel.global_batch({'x': local_images}, mesh)['x']
    return multihost_utils.process_allgather(encode(variables, images), tiled=True)

  return encode_global


def format_duration(seconds: float) -> str:
  """HH:MM:SS (hours beyond 24 kept, unlike time.strftime)."""
  seconds = max(0, int(round(seconds)))
  return f'{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class EncodeProgress:
  """Progress lines of a long encode, at most one every `interval` seconds.

  Speed is measured from the first update on, so the first batch, which includes
  compilation, does not distort images/s and the ETA.
  """

  def __init__(self, name: str, total: int, interval: float = 5.0,
               clock=time.monotonic):
    self._name, self._total, self._interval, self._clock = name, total, interval, clock
    self._created = clock()
    self._start, self._start_done = None, 0  # Time and images done at the first update.
    self._last = 0.0

  def _rate(self, now: float, done: int) -> float | None:
    if self._start is None or now <= self._start or done <= self._start_done:
      return None
    return (done - self._start_done) / (now - self._start)

  def update(self, done: int) -> str | None:
    """Records that `done` images are encoded; returns the line logged, if any."""
    now = self._clock()
    if self._start is None:
      self._start = self._last = now
      self._start_done = done
      return None
    if now - self._last < self._interval or done >= self._total:
      return None
    self._last = now
    rate = self._rate(now, done) or 1e-9
    line = (f'Encoding {self._name}: {done:,}/{self._total:,} '
            f'({100 * done / self._total:.0f}%), {rate:,.0f} images/s, '
            f'ETA {format_duration((self._total - done) / rate)}')
    logging.info(line)
    return line

  def finish(self, done: int) -> str:
    """Logs and returns the closing line: images, wall time and speed."""
    now = self._clock()
    line = (f'Encoded {self._name}: {done:,} images in '
            f'{format_duration(now - self._created)}')
    rate = self._rate(now, done)
    if rate is not None:
      line += f' ({rate:,.0f} images/s after the first batch, which compiles)'
    logging.info(line)
    return line


def process_shard(indices: np.ndarray, batch_size: int, process_index: int,
                  process_count: int) -> np.ndarray:
  """This process's rows of every global batch of `indices`, the last batch padded by
  repeating the last index: processes read and encode disjoint shards of a split."""
  n_batches = -(-len(indices) // batch_size)
  padded = np.concatenate([indices, np.repeat(indices[-1:],
                                              n_batches * batch_size - len(indices))])
  local = batch_size // process_count
  rows = padded.reshape(n_batches, process_count, local)[:, process_index]
  return rows.reshape(-1)


def encode_split(encoder, variables, pool, indices: np.ndarray, *, batch_size: int,
                 image_size: int, num_threads: int, name: str = 'images',
                 progress_every: float = 5.0, transform: str = 'resize',
                 resize_size: int = 256) -> tuple[Any, float]:
  """Codes [n, bits] of `indices` (or what `encoder` returns per image, e.g. codes and
  predictions) and the forward time in seconds (compilation excluded).

  `batch_size` is global: with several processes each reads and encodes its own shard
  of every batch, and every process receives all codes. Logs progress as
  'Encoding <name>: done/total ...' every `progress_every` seconds.
  """
  local = process_shard(np.asarray(indices), batch_size, jax.process_index(),
                        jax.process_count())
  batches = pipeline.eval_batches(
      pool, local, batch_size=batch_size // jax.process_count(), image_size=image_size,
      num_threads=num_threads, transform=transform, resize_size=resize_size)
  progress = EncodeProgress(name, len(indices), progress_every)
  outs, seconds, done = [], 0.0, 0
  for i, (images, _) in enumerate(batches):
    if i == 0:  # Compile outside the timed region.
      jax.block_until_ready(encoder(variables, images))
    start = time.perf_counter()
    out = encoder(variables, images)
    seconds += time.perf_counter() - start
    outs.append(jax.tree.map(np.asarray, out))
    done = min(done + batch_size, len(indices))
    progress.update(done)
  progress.finish(done)
  joined = jax.tree.map(lambda *parts: np.concatenate(parts)[:len(indices)], *outs)
  return joined, seconds


def restore_for_eval(config, workdir: str, model, checkpoint_step: int | None = None):
  from dahjax import train  # pylint: disable=g-import-not-at-top
  manager = checkpoints.create_manager(workdir, config, read_only=True)
  step = manager.latest_step() if checkpoint_step is None else checkpoint_step
  if step is None:
    raise FileNotFoundError(
        f'No checkpoint in {os.path.join(workdir, checkpoints.CHECKPOINT_DIR)}. Train '
        f'one first: python -m dahjax.main --config <config> --workdir {workdir}')
  if step not in manager.all_steps():
    raise FileNotFoundError(f'No checkpoint for step {step} in {workdir}; available: '
                            f'{sorted(manager.all_steps())}.')
  state = train.create_train_state(jax.random.key(0), config, model,
                                   config.data.image_size)
  return checkpoints.restore(manager, step, state, workdir)


def _encode_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  # A multiple of the devices (and processes) the batch is split over.
  unit = int(np.lcm(jax.device_count(), jax.process_count()))
  return dict(batch_size=-(-config.eval.batch_size // unit) * unit,
              image_size=config.data.image_size, num_threads=config.data.num_threads,
              transform=config.data.get('transform', 'resize'),
              resize_size=config.data.get('resize_size', 256))


def _variables(state, mesh):
  return jax.device_put({'params': state.params, 'batch_stats': state.batch_stats},
                        parallel.replicated(mesh))


def classification_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float | None:
  """Share of `predictions` [n] (class indices) equal to single-label 0/1 `labels`
  [n, C]; None for multi-label data, where one top class is not the answer."""
  if not len(labels) or np.any(np.sum(labels, axis=1) != 1):
    return None
  return float(np.mean(predictions == np.argmax(labels, axis=1)))


def _map_topk(config, data, n_db: int) -> tuple[int | None, int | None]:
  """(K reported, K searched): the protocol's K beyond the database (a small test copy)
  ranks the whole database, which is what the top K then holds; a K set in the config
  must fit."""
  topk = config.eval.topk if config.eval.topk is not None else data.protocol.map_topk
  search_k = (min(topk, n_db) if topk is not None and config.eval.topk is None
              else topk)
  return topk, search_k


CURVE_FILE = 'curve.jsonl'
CURVE_PLOT = 'learning_curve.png'
CURVE_SEED = 0  # Fixed, so that the curves of runs on the same splits share queries.


def curve_queries(num_queries: int, count: int, seed: int = CURVE_SEED) -> np.ndarray:
  """Rows (sorted) of the fixed query subset of the learning curve: `count` drawn
  without replacement with `seed`; every query when `count` is 0 or covers them all."""
  if count <= 0 or count >= num_queries:
    return np.arange(num_queries)
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(num_queries, size=count, replace=False))


def curve_metrics(config, data, q_rows, q_codes, q_pred, db_codes) -> dict[str, Any]:
  """The learning curve's metrics of query rows `q_rows` against the whole database."""
  q_idx, db_idx = data.splits['query'][q_rows], data.splits['database']
  _, search_k = _map_topk(config, data, len(db_idx))
  q_labels = data.pool.labels[q_idx]
  metrics = retrieval.retrieval_metrics(
      q_codes, db_codes, q_labels, data.pool.labels[db_idx], topk=search_k,
      precision_at=config.eval.precision_at, radius=config.eval.radius)
  metrics.update(retrieval.bit_balance_summary(db_codes))
  metrics['accuracy'] = classification_accuracy(q_pred, q_labels)
  metrics['num_queries'] = len(q_idx)
  return metrics


class LearningCurve:
  """Evaluation during training on a fixed query subset against the whole database.

  Each point (mAP, precision@N, bit balance, the classifier's accuracy on those
  queries, and the mean training loss terms since the previous point) is appended to
  `<workdir>/eval/curve.jsonl` and, prefixed `curve_`, to metrics.jsonl/TensorBoard,
  and `eval/learning_curve.png` is redrawn. It follows the run; the number a run reports
  is always the full evaluation of its last checkpoint, never a point chosen here (the
  queries are the test set).
  """

  def __init__(self, config, workdir: str, *, data, model, mesh, writer,
               steps_per_epoch: int):
    self._config, self._data, self._mesh, self._writer = config, data, mesh, writer
    self._steps_per_epoch = steps_per_epoch
    self._dir = os.path.join(workdir, 'eval')
    self.rows = curve_queries(len(data.splits['query']), config.eval.curve_queries)
    self._encoder = make_encoder(model, mesh, encode_chunk_size(config.eval.chunk_size),
                                 with_predictions=True)

  def evaluate(self, state, step: int, train_means: dict[str, float]) -> dict[str, Any]:
    """Encodes the database and the curve's queries with `state` and records a point."""
    start = time.monotonic()
    variables, kwargs = _variables(state, self._mesh), _encode_settings(self._config)
    splits, pool = self._data.splits, self._data.pool
    (db_codes, _), _ = encode_split(self._encoder, variables, pool, splits['database'],
                                    name='database (curve)', **kwargs)
    (q_codes, q_pred), _ = encode_split(self._encoder, variables, pool,
                                        splits['query'][self.rows],
                                        name='queries (curve)', **kwargs)
    return self.record(step, q_codes, q_pred, db_codes, train_means,
                       seconds=time.monotonic() - start)

  def record(self, step: int, q_codes, q_pred, db_codes, train_means, *,
             seconds: float) -> dict[str, Any]:
    """Records the point of step `step` from the curve queries' codes and predictions."""
    metrics = curve_metrics(self._config, self._data, self.rows, q_codes, q_pred,
                            db_codes)
    point = {'step': step, 'epoch': step / self._steps_per_epoch, **metrics,
             'seconds': seconds, **{f'train_{k}': v for k, v in train_means.items()}}
    self._writer.write(step, {f'curve_{k}': v for k, v in point.items()
                              if k != 'step' and isinstance(v, (int, float))})
    logging.info('Learning curve at step %d (epoch %.2f): mAP %.4f on %d queries.', step,
                 point['epoch'], point['map'], point['num_queries'])
    if jax.process_index() == 0:
      os.makedirs(self._dir, exist_ok=True)
      path = os.path.join(self._dir, CURVE_FILE)
      with open(path, 'a') as f:
        f.write(json.dumps(point, allow_nan=False) + '\n')
      try:
        plots.plot_learning_curve(read_curve(path), os.path.join(self._dir, CURVE_PLOT),
                                  title=self.title())
      except Exception:  # pylint: disable=broad-except
        logging.exception('Could not draw the learning curve; its points are written.')
    return point

  def title(self) -> str:
    c = self._config
    name = method_name(c.model_name, c.model.get('attention'), loss_name=c.loss_name,
                       loss=c.loss.to_dict())
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


def evaluate(config: ml_collections.ConfigDict, workdir: str, *, state=None, model=None,
             data: input_data.Data | None = None, mesh=None,
             checkpoint_step: int | None = None, writer=None,
             curve: LearningCurve | None = None,
             train_means: dict[str, float] | None = None) -> dict[str, Any]:
  """Encodes queries and database with `state` (default: the workdir's checkpoint).

  `writer` is the run's `train.MetricWriter`; one is opened when not given. With
  `curve`, the learning curve's point of this state is taken from the same codes.
  """
  from dahjax import train  # pylint: disable=g-import-not-at-top
  data = data or input_data.prepare(config, workdir)
  model = model or train.create_model(config)
  mesh = mesh or parallel.create_mesh()
  if state is None:
    state = restore_for_eval(config, workdir, model, checkpoint_step)
  start = time.monotonic()
  variables = _variables(state, mesh)
  encoder = make_encoder(model, mesh, encode_chunk_size(config.eval.chunk_size),
                         with_predictions=True)
  kwargs = _encode_settings(config)

  q_idx, db_idx = data.splits['query'], data.splits['database']
  logging.info('Encoding %d database and %d query images.', len(db_idx), len(q_idx))
  (db_codes, _), db_seconds = encode_split(encoder, variables, data.pool, db_idx,
                                           name='database', **kwargs)
  (q_codes, q_pred), _ = encode_split(encoder, variables, data.pool, q_idx,
                                      name='queries', **kwargs)
  q_labels, db_labels = data.pool.labels[q_idx], data.pool.labels[db_idx]

  topk, search_k = _map_topk(config, data, len(db_idx))
  metrics = retrieval.retrieval_metrics(
      q_codes, db_codes, q_labels, db_labels, topk=search_k,
      precision_at=config.eval.precision_at, radius=config.eval.radius, curves=True)
  attention = config.model.get('attention')
  metrics.update(retrieval.bit_balance_summary(db_codes))
  metrics.update({
      'accuracy': classification_accuracy(q_pred, q_labels),
      'encode_us_per_image': 1e6 * db_seconds / len(db_idx),
      'bits': int(q_codes.shape[1]),
      'protocol': config.data.protocol,
      'map_topk': 'ALL' if topk is None else int(topk),
      'num_queries': len(q_idx),
      'num_database': len(db_idx),
      'step': int(state.step),
      'model': config.model_name,
      'attention': attention,
      'method': method_name(config.model_name, attention, loss_name=config.loss_name,
                            loss=config.loss.to_dict()),
  })
  scalars = {k: v for k, v in metrics.items()
             if isinstance(v, (int, float)) and k != 'step'}
  if jax.process_index() == 0:
    write_outputs(workdir, metrics, q_codes, db_codes, q_labels, db_labels)
  own_writer = writer is None
  writer = writer or train.MetricWriter(workdir)
  writer.write(metrics['step'], {f'eval_{k}': v for k, v in scalars.items()})
  if curve is not None:
    curve.record(metrics['step'], q_codes[curve.rows], q_pred[curve.rows], db_codes,
                 train_means or {}, seconds=time.monotonic() - start)
  if own_writer:
    writer.close()
  logging.info('Evaluation: %s', json.dumps(scalars))
  if jax.process_index() == 0:
    write_plots(os.path.join(workdir, 'eval'), metrics, q_codes, db_codes, q_labels,
                db_labels, load_query=lambda i: data.pool.load_image(q_idx[i]),
                load_result=lambda j: data.pool.load_image(db_idx[j]),
                class_names=data.pool.class_names)
  return metrics


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


def method_name(model_name: str, attention: str | None = None, *,
                loss_name: str | None = None, loss: dict[str, Any] | None = None) -> str:
  """The method's name in the papers' tables, e.g. 'DAH', 'NoneA-DAH', 'DPFAH'.

  Args:
    model_name: the registered model (`config.model_name`).
    attention: `config.model.attention`, None for a model without the option.
    loss_name: `config.loss_name`; with 'dpfah', `loss` tells the ablations apart.
    loss: the loss's settings (`config.loss`).
  """
  if loss_name == 'dpfah' and loss and not loss.get('eta') and not loss.get('zeta'):
    if model_name == 'dpfah_resnet18' and attention in _L1_ONLY:
      return _L1_ONLY[attention]
    return f'{method_name(model_name, attention)}, L1 only'
  if (model_name, attention) in _METHODS:
    return _METHODS[model_name, attention]
  return model_name if attention is None else f'{model_name} ({attention})'


GRID_QUERIES = 8
GRID_RESULTS = 10
GRID_SEED = 0  # Fixed, so that grids of different runs on the same splits match.


def write_plots(eval_dir: str, metrics: dict[str, Any], q_codes, db_codes, q_labels,
                db_labels, *, load_query, load_result,
                class_names: list[str] | None = None) -> list[str]:
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
  title = (f'{metrics.get("method", "")}, {metrics["bits"]} bits, '
           f'mAP@{metrics["map_topk"]} {metrics["map"]:.4f}')
  curve, at_n = metrics['radius_curve'], metrics['precision_at_n']
  paths = {name: os.path.join(eval_dir, f'{name}.png') for name in
           ('pr_curve', 'precision_at_n', 'precision_radius', 'retrieval_grid')}
  jobs = {
      'pr_curve': lambda: plots.plot_pr_curve(
          curve['precision'], curve['recall'], paths['pr_curve'], title=title),
      'precision_at_n': lambda: plots.plot_precision_at_n(
          at_n['n'], at_n['precision'], paths['precision_at_n'], title=title),
      'precision_radius': lambda: plots.plot_precision_radius(
          curve['precision'], paths['precision_radius'], max_radius=4, title=title),
      'retrieval_grid': lambda: _retrieval_grid(
          paths['retrieval_grid'], q_codes, db_codes, q_labels, db_labels, load_query,
          load_result, class_names, title),
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


def _retrieval_grid(path, q_codes, db_codes, q_labels, db_labels, load_query,
                    load_result, class_names, title) -> bool:
  """The retrieval grid of a fixed choice of queries; False when images cannot load."""
  queries = plots.choose_queries(len(q_codes), GRID_QUERIES, GRID_SEED)
  results, distances = plots.hamming_top_k(q_codes[queries], db_codes, GRID_RESULTS)
  try:
    query_images = [load_query(int(i)) for i in queries]
    result_images = [[load_result(int(j)) for j in row] for row in results]
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('No retrieval grid: the images cannot be loaded (%s: %s).',
                    type(e).__name__, e)
    return False

  def names(labels):
    if not class_names:
      return ''
    present = [class_names[c] for c in np.flatnonzero(labels)]
    # Multi-label images (NUS-WIDE) would otherwise overflow their cell.
    return ', '.join(present[:2]) + (f' +{len(present) - 2}' if len(present) > 2 else '')

  plots.plot_retrieval_grid(
      query_images, result_images, distances,
      plots.shares_label(q_labels[queries], db_labels[results]), path,
      query_captions=[names(q_labels[i]) for i in queries],
      result_captions=[[names(db_labels[j]) for j in row] for row in results],
      title=title)
  return True


def write_outputs(workdir, metrics, q_codes, db_codes, q_labels, db_labels) -> None:
  """Writes `eval/codes.npz` and `eval/metrics.json` into `workdir`."""
  eval_dir = os.path.join(workdir, 'eval')
  os.makedirs(eval_dir, exist_ok=True)
  with atomic.replacing(os.path.join(eval_dir, 'codes.npz'),
                         keep_extension=True) as tmp:
    np.savez_compressed(tmp, query_codes=q_codes.astype(np.uint8),
                        database_codes=db_codes.astype(np.uint8),
                        query_labels=q_labels.astype(np.uint8),
                        database_labels=db_labels.astype(np.uint8))
  atomic.write_json(os.path.join(eval_dir, 'metrics.json'), metrics, indent=2)
