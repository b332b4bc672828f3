"""Many devices and many processes compute what one device computes.

The 8-device checks run in a subprocess started with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (XLA reads its flags once); the
multi-process check starts 2 local processes through launch/local_multiprocess.sh.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from dahjax import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a fresh process with 8 CPU devices: loss, terms and gradients of one train
# step on one device and on an 8-device mesh, for the same global batch.
_EIGHT_DEVICES = r"""
import json, sys
import jax, numpy as np
from configs import default
from dahjax import losses, parallel, train
from dahjax import state as state_lib

setting = sys.argv[1]
config = default.get_config()
config.unlock()
if setting == 'dpfah':
  config.model_name, config.loss_name = 'dpfah_resnet18', 'dpfah'
  config.model.update(bits=12, num_classes=4, stem='cifar', attention='stem')
else:
  config.model.update(bits=12, num_classes=4)
size, batch = 32, 16
model = state_lib.create_model(config)
state = state_lib.create_train_state(jax.random.key(0), config, model)
rng = np.random.default_rng(0)
images = rng.random((batch, size, size, 3), dtype=np.float32)
labels = np.eye(4, dtype=np.float32)[np.arange(batch) % 4]
step = jax.jit(lambda s, b: train.loss_and_grads(
    s, b, loss_fn=losses.get_loss(config.loss_name),
    loss_kwargs=losses.loss_kwargs(config.loss_name, config.loss)))
out = {}
# 'reversed': the same batch in the opposite order on one device, which changes only the
# order of float32 sums: the yardstick for the 8-device result.
for name, n, order in (('one', 1, slice(None)), ('reversed', 1, slice(None, None, -1)),
                       ('eight', 8, slice(None))):
  mesh = parallel.create_mesh(jax.devices()[:n])
  s = jax.device_put(state, parallel.replicated(mesh))
  b = parallel.global_batch({'image': images[order], 'label': labels[order]}, mesh)
  assert len(b['image'].sharding.device_set) == n
  (loss, (terms, stats)), grads = step(s, b)
  out[name] = dict(loss=float(loss), terms={k: float(v) for k, v in terms.items()},
                   grads=[np.asarray(g).ravel().tolist() for g in jax.tree.leaves(grads)],
                   stats=[np.asarray(v).ravel().tolist() for v in jax.tree.leaves(stats)])
print('RESULT ' + json.dumps(out))
"""


def run_eight_devices(setting):
  env = dict(
    os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu'
  )
  proc = subprocess.run(
    [sys.executable, '-c', _EIGHT_DEVICES, setting],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')][-1]
  return json.loads(line[len('RESULT ') :])


def largest_relative_difference(grads_a, grads_b) -> float:
  """max over tensors of max |a - b| / max |a| (0 for tensors that are all zero)."""
  worst = 0.0
  for a, b in zip(grads_a, grads_b):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.max(np.abs(a))
    if scale > 0:
      worst = max(worst, float(np.max(np.abs(a - b)) / scale))
  return worst


@pytest.mark.parametrize('setting', ['dah', 'dpfah'])
def test_eight_devices_equal_one_device(setting):
  """Pairs across devices count: the loss and its terms on an 8-device mesh equal one
  device's to rtol 1e-5, BatchNorm's statistics to 1e-5; gradients differ no more than
  float32 summation order moves them (at most 3x the difference between the batch and
  the same batch reversed on one device, which ReLU kinks make about 1e-2 of a
  tensor's largest gradient for DAH at initialisation)."""
  out = run_eight_devices(setting)
  one, rev, eight = out['one'], out['reversed'], out['eight']
  np.testing.assert_allclose(eight['loss'], one['loss'], rtol=1e-5)
  for k in one['terms']:
    np.testing.assert_allclose(eight['terms'][k], one['terms'][k], rtol=1e-5, atol=1e-7)
  for s8, s1 in zip(eight['stats'], one['stats']):
    np.testing.assert_allclose(s8, s1, rtol=1e-5, atol=1e-6)
  floor = largest_relative_difference(one['grads'], rev['grads'])
  worst = largest_relative_difference(one['grads'], eight['grads'])
  print(
    f'{setting}: gradients, 8 devices vs 1: {worst:.2e}; reversed batch on 1 device: '
    f"{floor:.2e} (relative to each tensor's largest gradient)"
  )
  assert worst <= 3 * floor + 1e-6


def test_global_batch_and_mesh_on_one_process():
  mesh = parallel.create_mesh()
  batch = parallel.global_batch({'x': np.arange(8.0).reshape(4, 2)}, mesh)
  np.testing.assert_array_equal(batch['x'], np.arange(8.0).reshape(4, 2))
  assert mesh.shape['data'] == jax.device_count()


def test_initialize_needs_all_three_flags():
  with pytest.raises(ValueError, match='--coordinator_address, --num_processes'):
    parallel.initialize('127.0.0.1:1234', 2, None)
  with pytest.raises(ValueError, match='--process_id=2 must lie in'):
    parallel.initialize('127.0.0.1:1234', 2, 2)
  parallel.initialize()  # No cluster here: stays a single process.
  assert jax.process_count() == 1


def tiny_flags(tiny_folder, steps):
  return [
    f'--config.data.data_dir={tiny_folder}',
    '--config.model.bits=8',
    '--config.model.num_classes=3',
    '--config.batch_size=6',
    f'--config.num_train_steps={steps}',
    '--config.log_every_steps=1',
    '--config.checkpoint_every_steps=2',
    '--config.eval.batch_size=8',
    '--config.eval.precision_at=5',
    '--config.data.num_threads=1',
  ]


def read_params(workdir, step, config):
  """The parameters of checkpoint `step` of a run of `config`, onto this process's
  device (a checkpoint written by several processes holds their devices' shardings)."""
  from dahjax import state as state_lib  # pylint: disable=g-import-not-at-top

  model = state_lib.create_model(config)
  state = state_lib.create_train_state(jax.random.key(0), config, model)
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  manager = ocp.CheckpointManager(
    os.path.join(workdir, 'checkpoints'),
    options=ocp.CheckpointManagerOptions(read_only=True),
  )
  restored = manager.restore(
    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
  )
  return jax.tree.map(np.asarray, restored['state'].params)


def two_processes(workdir, tiny_folder, steps, extra=()):
  """`launch/local_multiprocess.sh 2` on the tiny data, started in the background."""
  return subprocess.Popen(
    ['bash', 'launch/local_multiprocess.sh', '2', 'configs/default.py', workdir]
    + tiny_flags(tiny_folder, steps)
    + ['--config.checkpoint_every_steps=100', *extra],
    cwd=ROOT,
    env={
      k: v for k, v in dict(os.environ, JAX_PLATFORMS='cpu').items() if k != 'XLA_FLAGS'
    },
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def process_logs(workdir):
  logs = os.path.join(workdir, 'logs')
  if not os.path.isdir(logs):
    return ''
  return ''.join(open(os.path.join(logs, f)).read() for f in sorted(os.listdir(logs)))


def processes():
  """(pid, argv) of every Python process of dahjax.main on this machine."""
  for path in glob.glob('/proc/[0-9]*/cmdline'):
    try:
      argv = open(path, 'rb').read().decode(errors='replace').split('\0')
    except OSError:
      continue
    if 'dahjax.main' in argv:
      yield int(path.split('/')[2]), argv


STEPS = 12
# Every 2 steps the processes agree on whether one of them was asked to stop.
PREEMPTION_CHECK = ['--config.preemption_check_every_steps=2']


@pytest.fixture(scope='module')
def two_process_run(tiny_folder, tmp_path_factory):
  """The workdir of an uninterrupted `launch/local_multiprocess.sh 2` run of STEPS steps
  (one device per process), shared by the tests that compare against it."""
  workdir = str(tmp_path_factory.mktemp('two_processes') / 'run')
  proc = two_processes(workdir, tiny_folder, STEPS, PREEMPTION_CHECK)
  assert proc.wait(timeout=900) == 0, process_logs(workdir)[-4000:]
  return workdir


def test_two_processes_equal_one(tiny_folder, tiny_config, tmp_path, two_process_run):
  """2 local processes (1 device each), each reading and feeding its half of every
  global batch, end with the parameters of 1 process holding the same 2 devices over
  the same global batches, and evaluate to the same mAP.

  The 1-process run uses 2 simulated devices so that both runs reduce the global batch
  in the same order: with 1 device the sums run in another order, and Adam's
  sign-like first steps turn float32 rounding into parameter differences of up to
  2 x lr per step, which would hide a real difference.
  """
  one = str(tmp_path / 'one')
  proc = subprocess.run(
    [sys.executable, '-m', 'dahjax.main', '--config', 'configs/default.py']
    + ['--workdir', one]
    + tiny_flags(tiny_folder, STEPS)
    + ['--config.checkpoint_every_steps=100', *PREEMPTION_CHECK],
    cwd=ROOT,
    env=dict(
      os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='--xla_force_host_platform_device_count=2'
    ),
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  logs = process_logs(two_process_run)
  assert 'Process 1 of 2' in logs and 'Process 0 of 2' in logs
  p1 = read_params(one, STEPS, tiny_config)
  p2 = read_params(two_process_run, STEPS, tiny_config)
  worst = max(
    float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2))
  )
  print(f'2 processes vs 1: largest parameter difference after {STEPS} steps {worst:.2e}')
  assert worst <= 1e-6
  m1 = json.load(open(os.path.join(one, 'eval', 'metrics.json')))
  m2 = json.load(open(os.path.join(two_process_run, 'eval', 'metrics.json')))
  assert m1['num_database'] == m2['num_database'] == 24
  assert m1['map'] == pytest.approx(m2['map'], abs=1e-9)


def test_sigterm_to_one_process_stops_all_and_resumes_exactly(
  tiny_folder, tiny_config, tmp_path, two_process_run
):
  """SIGTERM to process 1 alone of a 2-process run: both processes save one checkpoint
  at the same step (a multiple of preemption_check_every_steps) and exit with 143, and
  the launcher with them; the same command then resumes, and the parameters at the end
  equal an uninterrupted 2-process run's bit for bit."""
  steps, check, cut = STEPS, PREEMPTION_CHECK, str(tmp_path / 'cut')
  proc = two_processes(cut, tiny_folder, steps, check)
  deadline = time.time() + 900
  while f'step 3/{steps}' not in process_logs(cut):
    assert proc.poll() is None and time.time() < deadline, process_logs(cut)[-4000:]
    time.sleep(0.2)
  [second] = [pid for pid, argv in processes() if cut in argv and '--process_id=1' in argv]
  os.kill(second, signal.SIGTERM)
  assert proc.wait(timeout=600) == 143, process_logs(cut)[-4000:]
  logs = process_logs(cut)
  assert logs.count('Stopped by SIGTERM at step') == 2, logs[-4000:]
  saved = [int(s) for s in os.listdir(os.path.join(cut, 'checkpoints')) if s.isdigit()]
  assert len(saved) == 1 and saved[0] % 2 == 0 and 3 <= saved[0] < steps, saved
  assert logs.count(f'Stopped by SIGTERM at step {saved[0]},') == 2

  proc = two_processes(cut, tiny_folder, steps, check)
  assert proc.wait(timeout=900) == 0, process_logs(cut)[-4000:]
  a, b = (
    read_params(two_process_run, steps, tiny_config),
    read_params(cut, steps, tiny_config),
  )
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
