"""Input pipelines: samplers, preprocessing and grain datasets for training and encoding.

Training batches are a pure function of (seed, step): the sampler gives the global
batch's pool indices for a step, each process loads its own contiguous slice of it, and
a restarted run starting at step s sees exactly the batches an uninterrupted run would.
Images are decoded, resized and cropped by grain, in threads of the training process or
in worker processes (`num_workers`), each making whole batches; the batches leave the
host as uint8 with a flip flag per image, and `model_input` scales and mirrors them on
the device inside the jitted step.
"""

from collections.abc import Iterator
from collections.abc import Sequence
import functools
from typing import Any, Protocol

import grain
from grain import multiprocessing as grain_mp
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dahjax import registry
from dahjax.data import bad_images as bad_images_lib
from dahjax.data import protocols


class Sampler(Protocol):
  batch_size: int
  steps_per_epoch: int
  indices: np.ndarray  # The pool indices it draws from.

  def batch_indices(self, step: int) -> np.ndarray: ...


class ClassBalancedSampler:
  """Every batch holds `per_class` images of every class (DAH: 2 per class, batch 2n).

  Each class is shuffled once per epoch; an epoch ends when the smallest class is used
  up. Within a batch the classes are interleaved, so any contiguous slice of a batch
  (one process's share) is as balanced as its size allows.
  """

  def __init__(self, labels: np.ndarray, indices: np.ndarray, per_class: int, seed: int):
    if per_class < 1:
      raise ValueError(f'per_class must be >= 1, got {per_class}.')
    self.indices = np.asarray(indices)
    classes = np.argmax(labels[indices], axis=1)
    self._members = [indices[classes == c] for c in range(labels.shape[1])]
    smallest = min(len(m) for m in self._members)
    if smallest < per_class:
      raise ValueError(
        f'A class has only {smallest} training images, fewer than '
        f'per_class={per_class}; use data.sampler="random".'
      )
    self.per_class = per_class
    self.batch_size = per_class * len(self._members)
    self.steps_per_epoch = smallest // per_class
    self.seed = seed

  @functools.lru_cache(maxsize=2)
  def _epoch(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([self.seed, epoch])
    n = self.steps_per_epoch * self.per_class
    # [classes, steps * per_class] -> [steps, per_class, classes] -> [steps, batch].
    table = np.stack([rng.permutation(m)[:n] for m in self._members])
    table = table.reshape(len(self._members), self.steps_per_epoch, self.per_class)
    return table.transpose(1, 2, 0).reshape(self.steps_per_epoch, self.batch_size)

  def batch_indices(self, step: int) -> np.ndarray:
    return self._epoch(step // self.steps_per_epoch)[step % self.steps_per_epoch]


class RandomSampler:
  """Uniform shuffling without replacement each epoch; the last partial batch is dropped."""

  def __init__(self, indices: np.ndarray, batch_size: int, seed: int):
    if len(indices) < batch_size:
      raise ValueError(
        f'batch_size={batch_size} exceeds the {len(indices)} training images.'
      )
    self._indices = self.indices = np.asarray(indices)
    self.batch_size = batch_size
    self.steps_per_epoch = len(indices) // batch_size
    self.seed = seed

  @functools.lru_cache(maxsize=2)
  def _epoch(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([self.seed, epoch])
    n = self.steps_per_epoch * self.batch_size
    return rng.permutation(self._indices)[:n].reshape(self.steps_per_epoch, -1)

  def batch_indices(self, step: int) -> np.ndarray:
    return self._epoch(step // self.steps_per_epoch)[step % self.steps_per_epoch]


def _class_balanced(labels, indices, batch_size, seed) -> Sampler:
  return ClassBalancedSampler(labels, indices, batch_size // labels.shape[1], seed)


def _random(labels, indices, batch_size, seed) -> Sampler:
  del labels
  return RandomSampler(indices, batch_size, seed)


SAMPLERS = {'class_balanced': _class_balanced, 'random': _random}


def check_sampler(
  name: str, *, batch_size: int, num_classes: int, multi_label: bool
) -> None:
  """Raises ValueError, saying what to change, for a sampler that cannot batch this data.

  Args:
    name: `config.data.sampler`.
    batch_size: the global batch size.
    num_classes: the number of classes C.
    multi_label: whether images may carry several labels.
  """
  registry.lookup(SAMPLERS, name, 'sampler')
  if name != 'class_balanced':
    return
  if multi_label:
    raise ValueError(
      'The class-balanced sampler needs single-label data; this protocol '
      'can be multi-label: use --config.data.sampler=random.'
    )
  if batch_size % num_classes:
    raise ValueError(
      f'batch_size={batch_size} is not divisible by the {num_classes} classes, as the '
      f'class-balanced sampler needs; use a multiple of {num_classes} or '
      '--config.data.sampler=random.'
    )


def make_sampler(
  name: str, *, labels: np.ndarray, indices: np.ndarray, batch_size: int, seed: int
) -> Sampler:
  """Builds sampler `name` over the pool `indices` with 0/1 `labels` [pool, C]."""
  build = registry.lookup(SAMPLERS, name, 'sampler')
  if name == 'class_balanced':
    check_sampler(
      name,
      batch_size=batch_size,
      num_classes=labels.shape[1],
      multi_label=bool(np.any(labels[indices].sum(axis=1) != 1)),
    )
  return build(labels, indices, batch_size, seed)


def resize_square(image: np.ndarray, image_size: int) -> np.ndarray:
  """uint8 HWC resized to image_size x image_size (bilinear), only if needed."""
  if image.shape[:2] != (image_size, image_size):
    image = np.asarray(
      Image.fromarray(image).resize((image_size, image_size), Image.BILINEAR)
    )
  return image


def model_input(images: jax.Array, flip: jax.Array | None = None) -> jax.Array:
  """The model's input, computed on the device inside the jitted step: uint8 images
  [b, H, W, 3] to float32 in [0, 1] (float images pass unchanged), each image mirrored
  left-right where `flip` [b] is true.

  The host sends uint8 images (a quarter of float32's bytes) and a flip flag per image.
  The result is what the host computed before (x / 255 in float32, then the mirror
  image) within one float32 rounding step: XLA's CPU division is not always correctly
  rounded.
  """
  x = images.astype(jnp.float32) / 255.0 if images.dtype == jnp.uint8 else images
  if flip is not None:
    x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
  return x


def shorter_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
  """(height, width) of an h x w image resized so its shorter side is `size`."""
  scale = size / min(h, w)
  return max(size, round(h * scale)), max(size, round(w * scale))


def resize_shorter(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes so the shorter side is `size`, keeping the aspect ratio (torchvision's
  Resize(size) on a PIL image: bilinear, antialiased)."""
  h, w = image.shape[:2]
  if min(h, w) == size:
    return image
  new_h, new_w = shorter_side_shape(h, w, size)
  return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def resized_window(
  image: np.ndarray, size: int, top: int, left: int, crop: int
) -> np.ndarray:
  """The crop x crop window at (top, left) of `resize_shorter(image, size)`, made by
  resizing only that window (PIL's `box`): the filter taps are those of the whole
  resize, so the result matches it up to the rounding of PIL's intermediate 8-bit pass
  (some pixels differ by 1), at a fraction of the cost for large images: only the
  crop's pixels are computed.
  """
  h, w = image.shape[:2]
  if min(h, w) == size:
    return _crop(image, top, left, crop)
  new_h, new_w = shorter_side_shape(h, w, size)
  sy, sx = h / new_h, w / new_w
  box = (left * sx, top * sy, (left + crop) * sx, (top + crop) * sy)
  return np.asarray(Image.fromarray(image).resize((crop, crop), Image.BILINEAR, box=box))


def _crop(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
  return np.ascontiguousarray(image[top : top + size, left : left + size])


# Training transforms: (uint8 HWC image, ...) -> (uint8 [size, size, 3], flip). The
# random draws (crop position, then flip) are made in a fixed order from `rng`.


def _resize_train(image, *, image_size, random_flip, rng, resize_size):
  del resize_size
  return resize_square(image, image_size), bool(random_flip and rng.random() < 0.5)


def _imagenet_crop_train(image, *, image_size, random_flip, rng, resize_size):
  del random_flip  # Always flips (DPFAH Sec. 4.2).
  h, w = shorter_side_shape(*image.shape[:2], resize_size)
  top = rng.integers(0, h - image_size + 1)
  left = rng.integers(0, w - image_size + 1)
  window = resized_window(image, resize_size, top, left, image_size)
  return window, bool(rng.random() < 0.5)


def _cifar_crop_train(image, *, image_size, random_flip, rng, resize_size):
  del random_flip, resize_size
  padded = np.pad(resize_square(image, image_size), ((4, 4), (4, 4), (0, 0)))
  top, left = rng.integers(0, 9, size=2)
  return _crop(padded, top, left, image_size), bool(rng.random() < 0.5)


def _central_crop_eval(image, *, image_size, resize_size):
  h, w = shorter_side_shape(*image.shape[:2], resize_size)
  top, left = (h - image_size) // 2, (w - image_size) // 2
  return resized_window(image, resize_size, top, left, image_size)


def _resize_eval(image, *, image_size, resize_size):
  del resize_size
  return resize_square(image, image_size)


# name -> (training preprocessing, its deterministic evaluation counterpart).
TRANSFORMS = {
  'resize': (_resize_train, _resize_eval),
  'imagenet_crop': (_imagenet_crop_train, _central_crop_eval),
  'cifar_crop': (_cifar_crop_train, _resize_eval),
}


def check_transform(name: str, *, image_size: int, resize_size: int) -> None:
  """Raises ValueError for an unknown transform or a crop larger than its resize."""
  registry.lookup(TRANSFORMS, name, 'transform')
  if name == 'imagenet_crop' and resize_size < image_size:
    raise ValueError(
      f'data.resize_size={resize_size} is smaller than the crop, '
      f'data.image_size={image_size}.'
    )


def train_transform(
  image: np.ndarray,
  *,
  transform: str,
  image_size: int,
  random_flip: bool,
  rng: np.random.Generator,
  resize_size: int = 256,
) -> tuple[np.ndarray, bool]:
  """Training preprocessing of a uint8 HWC image: (uint8 [size, size, 3], flip).

  'resize': resize to image_size, flip if `random_flip` (DAH).
  'imagenet_crop': resize the shorter side to `resize_size`, random image_size crop,
    random flip (DPFAH at 224 px, Sec. 4.2).
  'cifar_crop': zero-pad 4 pixels, random image_size crop, random flip (DPFAH's 32 px
    variant with the CIFAR stem).
  The mirror image is taken on the device (`model_input`, with the [0, 1] scaling), and
  the model normalises its input itself.
  """
  train_fn, _ = registry.lookup(TRANSFORMS, transform, 'transform')
  return train_fn(
    image, image_size=image_size, random_flip=random_flip, rng=rng, resize_size=resize_size
  )


def eval_transform(
  image: np.ndarray, *, transform: str, image_size: int, resize_size: int = 256
) -> np.ndarray:
  """Evaluation preprocessing to uint8 [size, size, 3]: a deterministic counterpart of
  `train_transform`.

  'imagenet_crop' resizes the shorter side to `resize_size` and takes the central
  image_size crop; 'resize' and 'cifar_crop' resize to image_size (if needed).
  """
  _, eval_fn = registry.lookup(TRANSFORMS, transform, 'transform')
  return eval_fn(image, image_size=image_size, resize_size=resize_size)


def _read_options(num_threads: int, buffer: int) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=buffer)


# Set in grain's worker processes (`_in_workers`): batches are then stacked straight
# into shared memory, which grain passes to the training process without copying.
_IN_WORKER = False
# Arrays smaller than this are stacked in ordinary memory (and pickled to the trainer).
_MIN_SHARED_BYTES = 1 << 16


def _mark_worker(worker_index: int, worker_count: int) -> None:
  del worker_index, worker_count
  global _IN_WORKER
  _IN_WORKER = True


def stack(arrays: Sequence[Any]) -> np.ndarray:
  """np.stack of equally shaped arrays; in a grain worker process, large ones into a
  shared-memory array. Otherwise grain copies each finished batch into shared memory
  in the worker's main thread, which costs as much as a sixth of the worker's time for
  224 px crops of 256 px JPEGs (a 9.6 MB copy per batch of 64, most of it page faults
  on the fresh memory)."""
  first = np.asarray(arrays[0])
  nbytes = len(arrays) * first.nbytes
  if not _IN_WORKER or first.dtype.hasobject or nbytes < _MIN_SHARED_BYTES:
    return np.stack(arrays)
  out = grain_mp.SharedMemoryArray((len(arrays),) + first.shape, first.dtype)
  return np.stack(arrays, out=out)


def _stack_rows(rows: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
  """A batch from rows that are dicts with the same keys (grain's batch_fn)."""
  return {key: stack([r[key] for r in rows]) for key in rows[0]}


def _in_workers(ds: grain.IterDataset, num_workers: int) -> grain.IterDataset:
  """`ds` computed in `num_workers` processes (grain's `mp_prefetch`; 0: in this one).

  Each worker computes every num_workers-th element (a whole batch) of the MapDataset
  before `to_iter_dataset`, and they are read back in order, so the batches do not
  depend on the number of workers.
  """
  if num_workers <= 0:
    return ds
  return ds.mp_prefetch(
    grain.MultiprocessingOptions(num_workers=num_workers), worker_init_fn=_mark_worker
  )


def train_dataset(
  pool: protocols.Pool,
  sampler: Sampler,
  *,
  image_size: int,
  random_flip: bool,
  seed: int,
  start_step: int,
  num_steps: int,
  process_index: int = 0,
  process_count: int = 1,
  num_threads: int = 4,
  num_workers: int = 0,
  transform: str = 'resize',
  resize_size: int = 256,
  bad_images: str = 'skip',
  bad_image_log: bad_images_lib.BadImageLog | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Batches {'image': uint8 [b, H, W, 3], 'flip': bool [b], 'label': float32 [b, C],
  'index': int32 [b]} for steps [start, num); `model_input` turns image and flip into
  the model's input on the device. 'index' is each image's position in
  `sampler.indices` (0..N-1), for the losses that keep a memory of every training image.

  Each process gets rows [p * b, (p + 1) * b) of every global batch, b = batch / processes.
  Random crops and flips are drawn from (seed, step, image index), so they too are the
  same after a restart, and for any number of `num_workers` processes (0: `num_threads`
  threads of this process) or threads. An unreadable image is replaced by its
  substitute (`bad_images` 'skip', see `bad_images.TrainLoader`), which `bad_image_log`
  records as the batch is taken, or raises `bad_images.BadImageError` ('error').
  """
  local = sampler.batch_size // process_count
  loader = bad_images_lib.TrainLoader(pool, sampler.indices, bad_images)
  train_position = np.zeros(len(pool), np.int32)
  train_position[sampler.indices] = np.arange(len(sampler.indices), dtype=np.int32)

  def load(position: int) -> dict[str, np.ndarray]:
    step, row = divmod(position, local)
    index = sampler.batch_indices(step)[process_index * local + row]
    (image, flip), used, replaced = loader.load(
      index,
      functools.partial(
        train_transform,
        transform=transform,
        image_size=image_size,
        random_flip=random_flip,
        rng=np.random.default_rng([seed, step, index]),
        resize_size=resize_size,
      ),
    )
    return {
      'image': image,
      'flip': np.bool_(flip),
      'label': pool.labels[used].astype(np.float32),
      'index': train_position[used],
      'replaced': np.int64(replaced),
      'substitute': np.int64(used),
    }

  ds = grain.MapDataset.range(start_step * local, num_steps * local).map(load)
  # Batched before the iterator: a worker (or thread) makes whole batches.
  ds = ds.batch(local, drop_remainder=True, batch_fn=_stack_rows)
  ds = _in_workers(
    ds.to_iter_dataset(_read_options(num_threads, 2 * num_threads)), num_workers
  )
  for batch in ds:
    replaced, substitutes = batch.pop('replaced'), batch.pop('substitute')
    if bad_image_log is not None:
      bad_image_log.note(replaced, substitutes)
    yield batch


def eval_batches(
  pool: protocols.Pool,
  indices: np.ndarray,
  *,
  batch_size: int,
  image_size: int,
  num_threads: int = 4,
  num_workers: int = 0,
  transform: str = 'resize',
  resize_size: int = 256,
  bad_images: str = 'skip',
) -> Iterator[tuple[np.ndarray, int, np.ndarray]]:
  """Yields (uint8 images [batch_size, H, W, 3], number of real rows, readable
  [batch_size] bool) over `indices` in order, read by `num_workers` processes (0:
  `num_threads` threads of this process).

  The last batch is padded by repeating its last image so every batch has one shape.
  An unreadable image is a zero image marked unreadable (`bad_images` 'skip'), for the
  caller to leave out, or raises `bad_images.BadImageError` ('error').
  """
  bad_images_lib.check_policy(bad_images)
  shape = (image_size, image_size, 3)

  def load(i):
    image, reason = bad_images_lib.try_load(
      pool,
      int(i),
      functools.partial(
        eval_transform, transform=transform, image_size=image_size, resize_size=resize_size
      ),
    )
    if reason is None:
      return image, True
    if bad_images == 'error':
      raise bad_images_lib.BadImageError(pool.location(int(i)), reason)
    return np.zeros(shape, np.uint8), False

  n = len(indices)
  # The last batch padded by repeating the last index, so batches are made whole.
  padded = np.concatenate([indices, np.repeat(indices[-1:], -n % batch_size)])

  def load_batch(start: int):
    rows = [load(i) for i in padded[start : start + batch_size]]
    return stack([r[0] for r in rows]), np.array([r[1] for r in rows])

  ds = grain.MapDataset.source(np.arange(0, n, batch_size)).map(load_batch)
  ds = _in_workers(
    ds.to_iter_dataset(_read_options(num_threads, 2 * num_threads)), num_workers
  )
  for start, (images, readable) in zip(range(0, n, batch_size), ds):
    yield images, min(batch_size, n - start), readable
