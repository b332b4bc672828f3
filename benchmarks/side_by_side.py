"""Total training throughput of one run on every core against one run per core, and
against one run split over one process per core.

  python benchmarks/side_by_side.py                  # DAH, 12 bits, batch 20
  python benchmarks/side_by_side.py --batch_size 128 --bits 48
  python benchmarks/side_by_side.py --config dpfah_cifar10_32px \
      --batch_size 128 --bits 48 --steps 6 --rounds 1

A small batch is little work to split over several threads, so on a machine with few
cores several runs side by side, each pinned to its own core (`taskset`, one XLA
intra-op thread), may train more images per second in total than one run on all of
them. This times the project's jitted train step of `--config` (default: DAH; CPU fast
path on, synthetic images, compilation excluded) these ways in one invocation:

  shared   one process on all cores;
  pinned   one process per core, started together, each held to its core (with one
           XLA thread, and with XLA's default threading);
  split    one run as one process per core, each held to its core and holding its
           share of the batch, joined by JAX's distributed runtime on a local port
           (what `launch/local_multiprocess.sh` and `results/campaign.sh` start).

Results are appended to docs/benchmarks.md with the command, machine and date.
"""

import json
import os
import socket
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position
from benchmarks import steps  # pylint: disable=wrong-import-position

_CONFIG = flags.DEFINE_string(
  'config', 'default', 'Module under configs/ whose model, loss and optimizer are timed.'
)
_BATCH = flags.DEFINE_integer('batch_size', 20, 'Train batch size.')
_BITS = flags.DEFINE_integer('bits', 12, 'Code length.')
_STEPS = flags.DEFINE_integer('steps', 60, 'Timed train steps per process.')
_ROUNDS = flags.DEFINE_integer('rounds', 2, 'Rounds of both layouts.')
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(ROOT, 'docs', 'benchmarks.md'),
  'Markdown file to append to; empty to only print.',
)
_WORKER = flags.DEFINE_boolean('worker', False, 'Internal: time one process.')
_COORDINATOR = flags.DEFINE_string(
  'coordinator', None, 'Internal: host:port of a split run.'
)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 1, 'Internal: processes of the run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', 0, 'Internal: this process of the run.')

# One intra-op thread: the pinned runs must not oversubscribe their core.
SINGLE_THREAD_FLAGS = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'


def worker() -> dict:
  from dahjax.models import conv  # pylint: disable=g-import-not-at-top

  conv.configure_cpu_backend()
  import jax  # pylint: disable=g-import-not-at-top

  from dahjax import parallel  # pylint: disable=g-import-not-at-top

  if _NUM_PROCESSES.value > 1:
    parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  config = load_config(_CONFIG.value)
  config.unlock()
  config.model.bits = _BITS.value
  config.batch_size = _BATCH.value
  b = _BATCH.value
  step, state, batch = steps.train_step_setup(config, b)
  for _ in range(3):  # Compile and warm up.
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  return {'images_per_sec': b * _STEPS.value / seconds, 'start': start}


def load_config(module: str):
  """`get_config()` of `configs/<module>.py`."""
  import importlib  # pylint: disable=g-import-not-at-top

  return importlib.import_module(f'configs.{module}').get_config()


def describe(config) -> str:
  """The timed setting in words, e.g. 'dah_resnet30, 32 px'."""
  return f'{config.model_name}, {config.data.image_size} px'


def launch(
  cpus: str | None, single_thread: bool, split: tuple[str, int, int] | None = None
) -> subprocess.Popen:
  """A worker process on `cpus` (None: all); `split` is (coordinator, processes, this
  process) of one run over several processes."""
  env = dict(os.environ)
  if single_thread:
    env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' ' + SINGLE_THREAD_FLAGS).strip()
  cmd = [
    sys.executable,
    os.path.abspath(__file__),
    '--worker',
    f'--config={_CONFIG.value}',
    f'--batch_size={_BATCH.value}',
    f'--bits={_BITS.value}',
    f'--steps={_STEPS.value}',
  ]
  if split is not None:
    coordinator, n, i = split
    cmd += [f'--coordinator={coordinator}', f'--num_processes={n}', f'--process_id={i}']
    env['JAX_PLATFORMS'] = 'cpu'
  if cpus is not None:
    cmd = ['taskset', '-c', cpus] + cmd
  return subprocess.Popen(
    cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
  )


def collect(procs) -> list[float]:
  rates = []
  for p in procs:
    out, err = p.communicate()
    lines = [l for l in out.splitlines() if l.startswith('RESULT ')]
    if p.returncode or not lines:
      raise RuntimeError(f'worker failed:\n{err[-3000:]}')
    rates.append(json.loads(lines[-1][len('RESULT ') :])['images_per_sec'])
  return rates


def main(argv):
  del argv
  if _WORKER.value:
    print('RESULT ' + json.dumps(worker()), flush=True)
    return
  cores = sorted(os.sched_getaffinity(0))
  rows = []
  for r in range(_ROUNDS.value):
    shared = collect([launch(None, False)])
    single = collect([launch(str(c), True) for c in cores])
    pinned = collect([launch(str(c), False) for c in cores])
    coordinator = f'127.0.0.1:{free_port()}'
    # Every process times the same global steps; the slowest is the run's speed.
    split = min(
      collect(
        [launch(str(c), False, (coordinator, len(cores), i)) for i, c in enumerate(cores)]
      )
    )
    print(
      f'round {r + 1}: shared {shared[0]:.1f} images/s; pinned, one thread '
      f'{" + ".join(f"{x:.1f}" for x in single)} = {sum(single):.1f}; pinned '
      f'{" + ".join(f"{x:.1f}" for x in pinned)} = {sum(pinned):.1f}; split {split:.1f}',
      flush=True,
    )
    rows.append((shared[0], single, pinned, split))
  lines = [
    '| round | one run on all cores (images/s) | one run per core, one XLA thread '
    '(images/s each) | one run per core, XLA default threads (images/s each) | '
    'one run, one process per core (images/s) | per core (both), split / all cores |',
    '|---|---|---|---|---|---|',
  ]
  each = lambda rates: f'{", ".join(f"{x:.1f}" for x in rates)} (total {sum(rates):.1f})'
  for i, (shared, single, pinned, split) in enumerate(rows):
    lines.append(
      f'| {i + 1} | {shared:.1f} | {each(single)} | {each(pinned)} | {split:.1f} | '
      f'{sum(single) / shared:.2f}x, {sum(pinned) / shared:.2f}x, {split / shared:.2f}x |'
    )
  body = '\n'.join(lines) + (
    f'\n\n{describe(load_config(_CONFIG.value))} (`configs/{_CONFIG.value}.py`), '
    f'{_BITS.value} bits, batch {_BATCH.value}, '
    f'{_STEPS.value} timed steps per process, {len(cores)} cores; pinned runs use '
    f'`taskset -c <core>`, the one-thread ones also `XLA_FLAGS="{SINGLE_THREAD_FLAGS}"`; '
    'the split run is one process per core, pinned, joined by `jax.distributed` on '
    'localhost, each with its share of the batch.'
  )
  print(body)
  report.append(
    _OUTPUT.value,
    'Side by side: one run on all cores, one run per core, or one run split over the cores',
    body,
  )


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


if __name__ == '__main__':
  app.run(main)
