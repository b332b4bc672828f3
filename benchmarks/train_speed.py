"""Training and encoding speed of a dahjax model on the local devices.

  python benchmarks/train_speed.py --config configs/dah_cifar10.py --batch_sizes 20

Times the project's own jitted train step and encoder on synthetic images (compilation
excluded), prints a table and appends it to docs/benchmarks.md with the command, the
machine and the date.
"""

import datetime
import os
import platform
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dahjax import evaluate  # pylint: disable=g-import-not-at-top,wrong-import-position
from dahjax import parallel  # pylint: disable=wrong-import-position
from dahjax import train  # pylint: disable=wrong-import-position

config_flags.DEFINE_config_file('config', 'configs/dah_cifar10.py', 'Config file.',
                                lock_config=False)
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['20'], 'Training batch sizes.')
_CONV_IMPLS = flags.DEFINE_list('conv_impls', ['xla', 'slices'],
                                'Convolution implementations to compare.')
_ENCODE_BATCH = flags.DEFINE_integer('encode_batch', 512, 'Encoding batch size.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps per measurement.')
_OUTPUT = flags.DEFINE_string('output', 'docs/benchmarks.md', 'Markdown file to append '
                              'to; empty to only print.')


def time_calls(fn, n):
  jax.block_until_ready(fn())  # Compile and warm up.
  start = time.perf_counter()
  for _ in range(n):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / n


def machine() -> str:
  dev = jax.devices()[0]
  return (f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
          f'{jax.device_count()} x {dev.platform} ({dev.device_kind}), jax {jax.__version__}')


def main(argv):
  del argv
  config = flags.FLAGS.config
  rows = []
  for impl in _CONV_IMPLS.value:
    config.model.conv_impl = impl
    rows += measure(config, impl)
  model_cfg = {k: v for k, v in config.model.items() if k != 'conv_impl'}
  title = (f'{config.model_name} ({model_cfg}) at {config.data.image_size}'
           f'x{config.data.image_size}')
  lines = [f'| {name} | {ips:.1f} | {ms:.0f} |' for name, ips, ms in rows]
  table = '\n'.join(['| measurement | images/s | ms per batch |', '|---|---|---|', *lines])
  print(f'{title}\n{table}')
  if _OUTPUT.value:
    with open(_OUTPUT.value, 'a') as f:
      f.write(f'\n### {title}\n\n`python {" ".join(sys.argv)}`\n\n'
              f'{datetime.date.today()}, {machine()}\n\n{table}\n')


def measure(config, impl):
  """(name, images/s, ms per batch) rows for training and encoding under `impl`."""
  size = config.data.image_size
  model = train.create_model(config)
  mesh = parallel.create_mesh()
  rng = np.random.default_rng(0)
  rows = []
  for b in map(int, _BATCH_SIZES.value):
    state = train.create_train_state(jax.random.key(0), config, model, size)
    state = jax.device_put(state, parallel.replicated(mesh))
    step = train.make_train_step(config)
    labels = np.eye(config.model.num_classes, dtype=np.float32)[
        np.arange(b) % config.model.num_classes]
    batch = parallel.global_batch(
        {'image': rng.random((b, size, size, 3), dtype=np.float32), 'label': labels}, mesh)
    holder = [state]

    def one_step():
      holder[0], metrics = step(holder[0], batch)
      return metrics['loss']

    seconds = time_calls(one_step, _STEPS.value)
    rows.append((f'train, batch {b}, conv {impl}', b / seconds, 1e3 * seconds))
  state = holder[0]
  encoder = evaluate.make_encoder(model, mesh)
  variables = jax.device_put({'params': state.params, 'batch_stats': state.batch_stats},
                             parallel.replicated(mesh))
  images = rng.random((_ENCODE_BATCH.value, size, size, 3), dtype=np.float32)
  seconds = time_calls(lambda: encoder(variables, images), max(2, _STEPS.value // 3))
  rows.append((f'encode, batch {_ENCODE_BATCH.value}, conv {impl}',
               _ENCODE_BATCH.value / seconds, 1e3 * seconds))
  return rows


if __name__ == '__main__':
  app.run(main)
