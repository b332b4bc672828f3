"""What the benchmarks share: the train step they time and how a script runs one
measurement in a fresh process (no flags here, so every benchmark script can import it)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_worker(script: str, task: dict) -> dict | None:
  """Runs `script --worker=<task as JSON>` in a fresh process (XLA reads its flags once
  per process) and returns the JSON of its last 'RESULT ' line, or None on failure."""
  cmd = [sys.executable, os.path.abspath(script), f'--worker={json.dumps(task)}']
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  if proc.returncode or not lines:
    print(f'{task} failed:\n{proc.stderr[-3000:]}', file=sys.stderr)
    return None
  return json.loads(lines[-1][len('RESULT ') :])


def torch_available() -> bool:
  """Whether torch and torchvision import here (the optional `bench` extra)."""
  check = [sys.executable, '-c', 'import torch, torchvision']
  return subprocess.run(check, capture_output=True).returncode == 0


def train_step_setup(config, batch_size: int):
  """(jitted train step, replicated state, sharded batch of random images).

  The project's own `train.make_train_step` and `state.create_train_state` for
  `config`, with a global batch of `batch_size` random uint8 images of
  `config.data.image_size` pixels and their flip flags (what the input pipeline sends),
  and one-hot labels cycling through the classes; each process gives its share of the
  rows.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from dahjax import parallel  # pylint: disable=g-import-not-at-top
  from dahjax import state as state_lib  # pylint: disable=g-import-not-at-top
  from dahjax import train  # pylint: disable=g-import-not-at-top

  size = config.data.image_size
  mesh = parallel.create_mesh()
  model = state_lib.create_model(config)
  state = state_lib.create_train_state(jax.random.key(0), config, model)
  state = jax.device_put(state, parallel.replicated(mesh))
  rows = batch_size // jax.process_count()
  rng = np.random.default_rng(jax.process_index())
  labels = np.eye(config.model.num_classes, dtype=np.float32)[
    np.arange(rows) % config.model.num_classes
  ]
  batch = parallel.global_batch(
    {
      'image': rng.integers(0, 256, (rows, size, size, 3), dtype=np.uint8),
      'flip': rng.random(rows) < 0.5,
      'label': labels,
    },
    mesh,
  )
  return train.make_train_step(config), state, batch
