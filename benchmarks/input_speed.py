"""How fast the input pipeline makes training batches, and what it costs the host.

  python benchmarks/input_speed.py [--seconds 15] [--batch 64]

For each transform, on JPEGs of the size it meets in practice (made from the shipped
CIFAR-10 subset into a temporary folder):

  resize          32 px CIFAR-10 images, resized to 32 (DAH);
  cifar_crop      32 px CIFAR-10 images, padded and cropped (DPFAH at 32 px);
  imagenet_crop   341 x 256 JPEGs (ImageNet-100's shorter-side-256 copies), and
                  500 x 375 JPEGs (original-size ILSVRC2012 images, resized on the fly),
                  cropped to 224 (DPFAH).

It measures training batches per second from `pipeline.train_dataset` with 1 and 2
grain worker processes (`config.data.num_workers`, one thread each) and their ratio;
the host CPU time per image of making a batch in one process, for the uint8 batches
the pipeline sends (crops on the host, scaling and flips on the device) against the
float32 batches it sent before (the whole image resized, then cropped, then x / 255
and the flip on the host), side by side in one run; and the bytes sent to the device
per image. From the per-worker rate it estimates what a 16-core and a 96-core
accelerator host would feed (one worker per core, the measured 2-worker efficiency).
Appends to docs/benchmarks.md.
"""

import os
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position

_STEPS = flags.DEFINE_integer('steps', 60, 'Fewest batches per pipeline measurement.')
_SECONDS = flags.DEFINE_float('seconds', 15.0, 'Shortest pipeline measurement, in seconds.')
_BATCH = flags.DEFINE_integer('batch', 64, 'Images per batch.')
_IMAGES = flags.DEFINE_integer('images', 256, 'Images per class folder made.')
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(ROOT, 'docs', 'benchmarks.md'),
  'Markdown file to append to; empty to only print.',
)

# (row name, transform, image size, JPEG size made or None for the 32 px originals)
CASES = [
  ('resize, 32 px CIFAR-10', 'resize', 32, None),
  ('cifar_crop, 32 px CIFAR-10', 'cifar_crop', 32, None),
  ('imagenet_crop, 341 x 256 JPEGs', 'imagenet_crop', 224, (341, 256)),
  ('imagenet_crop, 500 x 375 JPEGs', 'imagenet_crop', 224, (500, 375)),
]
HOSTS = (16, 96)
WARMUP = 4  # Batches from each worker before the clock starts.


def make_folder(root: str, size, per_class: int) -> str:
  """An image folder (train/<class>/*.jpg) of the shipped CIFAR-10 subset, upscaled
  to `size` (w, h) and saved as JPEG quality 90 (as ILSVRC2012's are), or copied."""
  from configs import quickstart  # pylint: disable=g-import-not-at-top

  src = os.path.join(quickstart.QUICKSTART_DATA, 'train')
  out = os.path.join(root, f'{size[0]}x{size[1]}' if size else 'cifar')
  if os.path.isdir(out):  # Made for an earlier case.
    return out
  for c in sorted(os.listdir(src)):
    os.makedirs(os.path.join(out, 'train', c))
    files = sorted(os.listdir(os.path.join(src, c)))
    for k in range(per_class):
      f = files[k % len(files)]
      target = os.path.join(out, 'train', c, f'{k:05d}.jpg')
      if size is None:
        shutil.copyfile(os.path.join(src, c, f), target)
      else:
        with Image.open(os.path.join(src, c, f)) as img:
          img.convert('RGB').resize(size, Image.BICUBIC).save(target, quality=90)
  return out


def pipeline_rate(pool, transform, image_size, workers, steps, seconds, batch):
  """Batches/s of `pipeline.train_dataset` with `workers` processes (one thread
  each), over at least `steps` batches and `seconds` seconds after a warm-up of
  `WARMUP` batches from every worker (each worker starts a Python process, which takes
  seconds, and its first batches are slower: measured over a couple of seconds, a
  second worker seemed to add 1.3x where it adds 1.9x)."""
  from dahjax.data import pipeline  # pylint: disable=g-import-not-at-top

  sampler = pipeline.RandomSampler(np.arange(len(pool)), batch, seed=0)
  it = pipeline.train_dataset(
    pool,
    sampler,
    image_size=image_size,
    random_flip=True,
    seed=0,
    start_step=0,
    num_steps=10**6,
    num_threads=1,
    num_workers=workers,
    transform=transform,
  )
  for _ in range(WARMUP * workers):
    next(it)
  start = time.perf_counter()
  n = 0
  while n < steps or time.perf_counter() - start < seconds:
    next(it)
    n += 1
  elapsed = time.perf_counter() - start
  it.close()
  return n / elapsed


def host_seconds_per_image(pool, transform, image_size, batch, rounds=3):
  """(uint8 path, float32 path): CPU seconds per image of making a batch in this
  process, the two paths interleaved batch by batch so both see the same machine."""
  from dahjax.data import pipeline  # pylint: disable=g-import-not-at-top

  def uint8_batch(indices):
    rows = [
      pipeline.train_transform(
        pool.load_image(int(i)),
        transform=transform,
        image_size=image_size,
        random_flip=True,
        rng=np.random.default_rng([0, int(i)]),
      )
      for i in indices
    ]
    return np.stack([r[0] for r in rows]), np.array([r[1] for r in rows])

  def before_transform(image, rng):  # Before: the whole image resized, then cropped.
    if transform != 'imagenet_crop':
      return pipeline.train_transform(
        image, transform=transform, image_size=image_size, random_flip=True, rng=rng
      )
    image = pipeline.resize_shorter(image, 256)
    top = rng.integers(0, image.shape[0] - image_size + 1)
    left = rng.integers(0, image.shape[1] - image_size + 1)
    crop = image[top : top + image_size, left : left + image_size]
    return np.ascontiguousarray(crop), bool(rng.random() < 0.5)

  def float32_batch(indices):  # What the pipeline made before: scaled, flipped.
    rows = [
      before_transform(pool.load_image(int(i)), np.random.default_rng([0, int(i)]))
      for i in indices
    ]
    images, flips = np.stack([r[0] for r in rows]), [r[1] for r in rows]
    return np.stack(
      [
        np.ascontiguousarray(x[:, ::-1]) if f else x
        for x, f in zip(images.astype(np.float32) / 255.0, flips)
      ]
    )

  times = {uint8_batch: 0.0, float32_batch: 0.0}
  for r in range(rounds):
    for start in range(0, len(pool) - batch + 1, batch):
      indices = np.arange(start, start + batch)
      for make in (
        (uint8_batch, float32_batch) if r % 2 == 0 else (float32_batch, uint8_batch)
      ):
        t = time.process_time()
        make(indices)
        times[make] += time.process_time() - t
  images = rounds * (len(pool) // batch) * batch
  return times[uint8_batch] / images, times[float32_batch] / images


def main(argv):
  del argv
  from dahjax.data import protocols  # pylint: disable=g-import-not-at-top

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for name, transform, image_size, size in CASES:
      folder = make_folder(tmp, size, _IMAGES.value // 10 if size else _IMAGES.value)
      pool = protocols.build_pool('image_folder', folder, ('train',))
      rates = {
        w: pipeline_rate(
          pool, transform, image_size, w, _STEPS.value, _SECONDS.value, _BATCH.value
        )
        * _BATCH.value
        for w in (1, 2)
      }
      new, old = host_seconds_per_image(pool, transform, image_size, _BATCH.value)
      rows.append((name, image_size, rates, new, old))
      print(name, rates, new, old, flush=True)
  lines = [
    '| transform and images | 1 worker, images/s | 2 workers, images/s | 2 / 1 | host ms '
    'per image, uint8 (now) | float32 (before) | uint8 / float32 | bytes to the device '
    'per image, uint8 (float32) | 16-core host, images/s | 96-core host, images/s |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for name, image_size, rates, new, old in rows:
    per_worker = rates[2] / 2  # The measured 2-worker efficiency carried to more cores.
    pixels = image_size * image_size * 3
    lines.append(
      f'| {name} | {rates[1]:,.0f} | {rates[2]:,.0f} | {rates[2] / rates[1]:.2f}x | '
      f'{1e3 * new:.3f} | {1e3 * old:.3f} | {new / old:.2f} | {pixels + 1:,} '
      f'({4 * pixels:,}) | ' + ' | '.join(f'{per_worker * h:,.0f}' for h in HOSTS) + ' |'
    )
  body = '\n'.join(lines) + (
    f'\n\nBatches of {_BATCH.value}, at least {_STEPS.value} and {_SECONDS.value:g} s per '
    f'measurement after {WARMUP} from each worker (which starts them), one thread per '
    'grain worker process; host time is the CPU time of decoding, transforming and '
    'stacking a batch in one process, against the path before (the whole image '
    'resized, then cropped; scaled to float32 and mirrored on the host), the two '
    'interleaved; bytes are the uint8 image and its flip flag, against the float32 '
    'image sent before (labels aside). The host columns assume one worker per core at '
    "the measured 2-worker rate per worker; they leave the training process's own "
    'core(s) aside.'
  )
  print(body)
  report.append(_OUTPUT.value, 'Input pipeline', body)


if __name__ == '__main__':
  app.run(main)
