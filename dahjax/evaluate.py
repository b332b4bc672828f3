"""Evaluation: encode the query and database splits, rank by Hamming distance, report.

Writes `<workdir>/eval/metrics.json` and `<workdir>/eval/codes.npz` (0/1 uint8 codes and
0/1 labels of queries and database), and appends eval_ metrics to `metrics.jsonl`.
"""

import json
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

from dahjax import checkpoints
from dahjax import parallel
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


def make_encoder(model, mesh, chunk_size: int | None = None):
  """A jitted function (variables, images) -> 0/1 uint8 codes.

  Images are placed sharded on the mesh's 'data' axis; variables should be replicated
  on the mesh (`jax.device_put(variables, parallel.replicated(mesh))`). Each device
  runs its rows in chunks of `chunk_size` (None: all at once), the last one padded.
  """
  def codes(variables, images):
    return model.binary_codes(model.apply(variables, images, train=False)['hash'])

  def per_device(variables, images):
    n = images.shape[0]
    if not chunk_size or n <= chunk_size:
      return codes(variables, images)
    chunks = -(-n // chunk_size)
    images = jnp.pad(images, ((0, chunks * chunk_size - n),) + ((0, 0),) * 3)
    out = jax.lax.map(lambda x: codes(variables, x),
                      images.reshape(chunks, chunk_size, *images.shape[1:]))
    return out.reshape(chunks * chunk_size, *out.shape[2:])[:n]

  encode = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P('data')),
                                 out_specs=P('data')))
  sharding = parallel.data_sharding(mesh)
  return lambda variables, images: encode(variables, jax.device_put(images, sharding))


def encode_split(encoder, variables, pool, indices: np.ndarray, *, batch_size: int,
                 image_size: int, num_threads: int) -> tuple[np.ndarray, float]:
  """Codes [n, bits] of `indices` and the forward time in seconds (compilation excluded)."""
  batches = pipeline.eval_batches(pool, indices, batch_size=batch_size,
                                  image_size=image_size, num_threads=num_threads)
  codes, seconds = [], 0.0
  for i, (images, n) in enumerate(batches):
    if i == 0:  # Compile outside the timed region.
      jax.block_until_ready(encoder(variables, images))
    start = time.perf_counter()
    out = jax.block_until_ready(encoder(variables, images))
    seconds += time.perf_counter() - start
    codes.append(np.asarray(out)[:n])
  return np.concatenate(codes), seconds


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


def evaluate(config: ml_collections.ConfigDict, workdir: str, *, state=None, model=None,
             data: input_data.Data | None = None, mesh=None,
             checkpoint_step: int | None = None, writer=None) -> dict[str, Any]:
  """Encodes queries and database with `state` (default: the workdir's checkpoint).

  `writer` is the run's `train.MetricWriter`; one is opened when not given.
  """
  from dahjax import train  # pylint: disable=g-import-not-at-top
  data = data or input_data.prepare(config, workdir)
  model = model or train.create_model(config)
  mesh = mesh or parallel.create_mesh()
  if state is None:
    state = restore_for_eval(config, workdir, model, checkpoint_step)
  variables = jax.device_put({'params': state.params, 'batch_stats': state.batch_stats},
                             parallel.replicated(mesh))
  encoder = make_encoder(model, mesh, encode_chunk_size(config.eval.chunk_size))
  devices = jax.device_count()
  batch_size = -(-config.eval.batch_size // devices) * devices
  kwargs = dict(batch_size=batch_size, image_size=config.data.image_size,
                num_threads=config.data.num_threads)

  q_idx, db_idx = data.splits['query'], data.splits['database']
  logging.info('Encoding %d database and %d query images.', len(db_idx), len(q_idx))
  db_codes, db_seconds = encode_split(encoder, variables, data.pool, db_idx, **kwargs)
  q_codes, _ = encode_split(encoder, variables, data.pool, q_idx, **kwargs)
  q_labels, db_labels = data.pool.labels[q_idx], data.pool.labels[db_idx]

  topk = config.eval.topk if config.eval.topk is not None else data.protocol.map_topk
  metrics = retrieval.retrieval_metrics(
      q_codes, db_codes, q_labels, db_labels, topk=topk,
      precision_at=config.eval.precision_at, radius=config.eval.radius)
  metrics.update({
      'bit_balance': retrieval.bit_balance(db_codes),
      'encode_us_per_image': 1e6 * db_seconds / len(db_idx),
      'bits': int(q_codes.shape[1]),
      'protocol': config.data.protocol,
      'map_topk': 'ALL' if topk is None else int(topk),
      'num_queries': len(q_idx),
      'num_database': len(db_idx),
      'step': int(state.step),
  })
  if jax.process_index() == 0:
    write_outputs(workdir, metrics, q_codes, db_codes, q_labels, db_labels)
  own_writer = writer is None
  writer = writer or train.MetricWriter(workdir)
  writer.write(metrics['step'], {f'eval_{k}': v for k, v in metrics.items()
                                 if isinstance(v, (int, float)) and k != 'step'})
  if own_writer:
    writer.close()
  logging.info('Evaluation: %s', json.dumps(metrics))
  return metrics


def write_outputs(workdir, metrics, q_codes, db_codes, q_labels, db_labels) -> None:
  eval_dir = os.path.join(workdir, 'eval')
  os.makedirs(eval_dir, exist_ok=True)
  # Write then rename, so a reader never sees a half-written file.
  tmp = os.path.join(eval_dir, 'codes.tmp.npz')
  np.savez_compressed(tmp, query_codes=q_codes.astype(np.uint8),
                      database_codes=db_codes.astype(np.uint8),
                      query_labels=q_labels.astype(np.uint8),
                      database_labels=db_labels.astype(np.uint8))
  os.replace(tmp, os.path.join(eval_dir, 'codes.npz'))
  tmp = os.path.join(eval_dir, 'metrics.json.tmp')
  with open(tmp, 'w') as f:
    json.dump(metrics, f, indent=2)
  os.replace(tmp, os.path.join(eval_dir, 'metrics.json'))
