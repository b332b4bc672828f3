"""The jitted, sharded encoder: images -> 0/1 codes (and the classifier's top class),
over all devices and processes, and the encoding of a split of a data pool."""

import time
from typing import Any

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np

from dahjax import parallel
from dahjax import progress as progress_lib
from dahjax.data import pipeline


def encode_chunk_size(chunk_size: int) -> int | None:
  """Rows per forward pass on each device: `chunk_size`, or with 0 ('auto') 128 on the
  CPU and the whole per-device batch on accelerators (None); docs/design.md says why."""
  if chunk_size:
    return chunk_size
  return 128 if jax.default_backend() == 'cpu' else None


def make_encoder(
  model, mesh, chunk_size: int | None = None, with_predictions: bool = False
):
  """A jitted function (variables, images) -> 0/1 uint8 codes; images are uint8 (or
  float32 in [0, 1]), turned into the model's input on the device.

    Images are placed sharded on the mesh's 'data' axis; variables should be replicated
    on the mesh (`jax.device_put(variables, parallel.replicated(mesh))`). Each device
    runs its rows in chunks of `chunk_size` (None: all at once), the last one padded.
    With `with_predictions` it returns (codes, the classifier's top class [n] int32).
  """

  def codes(variables, images):
    out = model.apply(variables, pipeline.model_input(images), train=False)
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
    out = jax.lax.map(
      lambda x: codes(variables, x), images.reshape(chunks, chunk_size, *images.shape[1:])
    )
    return jax.tree.map(lambda o: o.reshape(chunks * chunk_size, *o.shape[2:])[:n], out)

  encode = jax.jit(
    jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P('data')), out_specs=P('data'))
  )

  def encode_global(variables, local_images):
    # Each process passes its own rows of the global batch; every process gets all codes.
    images = parallel.global_batch({'x': local_images}, mesh)['x']
    return multihost_utils.process_allgather(encode(variables, images), tiled=True)

  return encode_global


def process_shard(
  indices: np.ndarray, batch_size: int, process_index: int, process_count: int
) -> np.ndarray:
  """This process's rows of every global batch of `indices`, the last batch padded by
  repeating the last index: processes read and encode disjoint shards of a split."""
  n_batches = -(-len(indices) // batch_size)
  padded = np.concatenate(
    [indices, np.repeat(indices[-1:], n_batches * batch_size - len(indices))]
  )
  local = batch_size // process_count
  rows = padded.reshape(n_batches, process_count, local)[:, process_index]
  return rows.reshape(-1)


def encode_split(
  encoder,
  variables,
  pool,
  indices: np.ndarray,
  *,
  batch_size: int,
  image_size: int,
  num_threads: int,
  num_workers: int = 0,
  name: str = 'images',
  progress_every: float = 5.0,
  transform: str = 'resize',
  resize_size: int = 256,
  bad_images: str = 'skip',
) -> tuple[Any, np.ndarray, float]:
  """Codes [n, bits] of `indices` (or what `encoder` returns per image, e.g. codes and
  predictions), which images were readable ([n] bool; the codes of the others are
  meaningless, see `pipeline.eval_batches`) and the forward time in seconds
  (compilation excluded).

  `batch_size` is global: with several processes each reads and encodes its own shard
  of every batch, and every process receives all codes. Logs progress as
  'Encoding <name>: done/total ...' every `progress_every` seconds.
  """
  local = process_shard(
    np.asarray(indices), batch_size, jax.process_index(), jax.process_count()
  )
  batches = pipeline.eval_batches(
    pool,
    local,
    batch_size=batch_size // jax.process_count(),
    image_size=image_size,
    num_threads=num_threads,
    num_workers=num_workers,
    transform=transform,
    resize_size=resize_size,
    bad_images=bad_images,
  )
  progress = progress_lib.EncodeProgress(name, len(indices), progress_every)
  outs, readable, seconds, done = [], [], 0.0, 0
  for i, (images, _, local_readable) in enumerate(batches):
    if i == 0:  # Compile outside the timed region.
      jax.block_until_ready(encoder(variables, images))
    start = time.perf_counter()
    out = encoder(variables, images)
    seconds += time.perf_counter() - start
    outs.append(jax.tree.map(np.asarray, out))
    if jax.process_count() > 1:  # In the order of the codes: every process's rows.
      local_readable = multihost_utils.process_allgather(local_readable, tiled=True)
    readable.append(np.asarray(local_readable, bool))
    done = min(done + batch_size, len(indices))
    progress.update(done)
  progress.finish(done)
  joined = jax.tree.map(lambda *parts: np.concatenate(parts)[: len(indices)], *outs)
  return joined, np.concatenate(readable)[: len(indices)], seconds
