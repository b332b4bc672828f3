"""Cost of the all-pairs losses (value and gradient) against the batch size.

  python benchmarks/loss_speed.py --batch_sizes 128,512,2048,8192

DAH's W1 needs sum_b log(1 - |x_ib - x_jb|) for every pair, an O(B^2 k) computation that
dahjax runs in bounded blocks of rows; DPFAH's L1 is an inner-product matrix, O(B^2 k)
too but a single matrix product. Both are timed jitted, with their gradients, on random
codes of `--bits` bits and 10 classes; the table gives the time per call and XLA's
temporary memory. Results are appended to docs/benchmarks.md.
"""

import os
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position
from dahjax import losses  # pylint: disable=wrong-import-position

_BATCH_SIZES = flags.DEFINE_list(
  'batch_sizes', ['128', '512', '2048', '8192'], 'Batch sizes B (B x B pairs).'
)
_BITS = flags.DEFINE_integer('bits', 48, 'Code length.')
_CLASSES = flags.DEFINE_integer('classes', 10, 'Number of classes.')
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(ROOT, 'docs', 'benchmarks.md'),
  'Markdown file to append to; empty to only print.',
)


def measure(loss_name: str, b: int) -> tuple[float, float]:
  """(ms per value-and-gradient call, temporary MiB) of loss `loss_name` at batch b."""
  rng = np.random.default_rng(0)
  raw = rng.normal(size=(b, _BITS.value)).astype(np.float32)
  hashes = 0.25 + 0.5 / (1 + np.exp(-raw)) if loss_name == 'dah' else raw
  labels = np.eye(_CLASSES.value, dtype=np.float32)[rng.integers(0, _CLASSES.value, b)]
  logits = rng.normal(size=(b, _CLASSES.value)).astype(np.float32)
  loss_fn = losses.get_loss(loss_name)

  def value(h, o):
    return loss_fn(outputs={'hash': h, 'logits': o}, labels=labels)[0]

  fn = jax.jit(jax.value_and_grad(value, argnums=(0, 1)))
  compiled = fn.lower(hashes, logits).compile()
  jax.block_until_ready(fn(hashes, logits))
  calls, start = 0, time.perf_counter()
  while calls < 3 or time.perf_counter() - start < 1.0:
    jax.block_until_ready(fn(hashes, logits))
    calls += 1
  seconds = (time.perf_counter() - start) / calls
  return 1e3 * seconds, compiled.memory_analysis().temp_size_in_bytes / 2**20


def main(argv):
  del argv
  lines = [
    '| batch B | pairs | DAH loss ms | DAH memory | DPFAH loss ms | DPFAH memory |',
    '|---|---|---|---|---|---|',
  ]
  for b in map(int, _BATCH_SIZES.value):
    dah_ms, dah_mib = measure('dah', b)
    dpfah_ms, dpfah_mib = measure('dpfah', b)
    lines.append(
      f'| {b:,} | {b * (b - 1):,} | {dah_ms:.1f} | {dah_mib:.0f} MiB | '
      f'{dpfah_ms:.1f} | {dpfah_mib:.0f} MiB |'
    )
    print(lines[-1], flush=True)
  body = '\n'.join(lines) + (
    f'\n\nValue and gradient of the total loss, {_BITS.value}-bit '
    f'codes, {_CLASSES.value} classes, float32, jitted.'
  )
  print(body)
  report.append(_OUTPUT.value, 'All-pairs loss cost against batch size', body)


if __name__ == '__main__':
  app.run(main)
