"""Runs survive: SIGTERM checkpoints and stops, kill -9 loses nothing, resumes are exact,
damaged checkpoints are skipped, non-finite losses stop training before saving, and a
workdir refuses another run's config."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import default
from dahjax import checkpoints
from dahjax import state as state_lib
from dahjax import train
from tests.parallel_test import ROOT
from tests.parallel_test import read_params
from tests.parallel_test import tiny_flags

STEPS = 10


def tiny_run_config(tiny_folder):
  """The config `start` runs (configs/default.py with `tiny_flags`)."""
  from configs import default  # pylint: disable=g-import-not-at-top

  config = default.get_config()
  config.unlock()
  for flag in tiny_flags(tiny_folder, STEPS):
    name, value = flag[len('--config.') :].split('=')
    *parents, leaf = name.split('.')
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = type(node[leaf])(value)
  return config


def start(workdir, tiny_folder, steps=STEPS, extra=()):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  cmd = [
    sys.executable,
    '-m',
    'dahjax.main',
    '--config',
    'configs/default.py',
    '--workdir',
    workdir,
    *tiny_flags(tiny_folder, steps),
    *extra,
  ]
  return subprocess.Popen(
    cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )


def logged_steps(workdir):
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(l)['step'] for l in f if '"train_loss"' in l]


def wait_for(condition, proc, timeout=600):
  deadline = time.time() + timeout
  while not condition():
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    assert time.time() < deadline, 'timed out'
    time.sleep(0.05)


@pytest.fixture(scope='module')
def uninterrupted(tiny_folder, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  proc = start(workdir, tiny_folder)
  out, _ = proc.communicate(timeout=900)
  assert proc.returncode == 0, out[-3000:]
  return read_params(workdir, STEPS, tiny_run_config(tiny_folder))


def assert_identical(params, reference):
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference)):
    np.testing.assert_array_equal(a, b)  # Bit for bit.


def test_sigterm_saves_stops_and_resumes_exactly(tiny_folder, tmp_path, uninterrupted):
  workdir = str(tmp_path / 'run')
  proc = start(workdir, tiny_folder)
  wait_for(lambda: len(logged_steps(workdir)) >= 3, proc)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 143, out[-3000:]
  assert 'Stopped by SIGTERM at step' in out
  stopped = max(logged_steps(workdir))
  assert 3 <= stopped < STEPS
  manager = ocp.CheckpointManager(
    os.path.join(workdir, 'checkpoints'),
    options=ocp.CheckpointManagerOptions(read_only=True),
  )
  assert manager.latest_step() == stopped  # Saved at the step it stopped, not before.
  position = manager.restore(stopped, args=ocp.args.Composite(data=ocp.args.JsonRestore()))
  assert position['data']['next_step'] == stopped + 1
  proc = start(workdir, tiny_folder)
  out, _ = proc.communicate(timeout=900)
  assert proc.returncode == 0, out[-3000:]
  assert logged_steps(workdir) == list(range(1, STEPS + 1))
  assert_identical(read_params(workdir, STEPS, tiny_run_config(tiny_folder)), uninterrupted)


def test_kill_9_then_resume_is_exact(tiny_folder, tmp_path, uninterrupted):
  workdir = str(tmp_path / 'run')
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  proc = start(workdir, tiny_folder)
  # Kill as soon as the second checkpoint (step 4) is complete, in mid-training.
  wait_for(lambda: os.path.isdir(os.path.join(ckpt_dir, '4')), proc)
  proc.kill()
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  proc = start(workdir, tiny_folder)
  out, _ = proc.communicate(timeout=900)
  assert proc.returncode == 0, out[-3000:]
  assert_identical(read_params(workdir, STEPS, tiny_run_config(tiny_folder)), uninterrupted)


def test_damaged_latest_checkpoint_falls_back(tiny_config, tmp_path, caplog):
  workdir = str(tmp_path)
  tiny_config.num_train_steps = 4
  train.train_and_evaluate(tiny_config, workdir)
  # Damage the latest checkpoint's array data: restoring it must fail.
  latest = os.path.join(workdir, 'checkpoints', '4', 'state')
  for root, _, files in os.walk(latest):
    for f in files:
      if 'ocdbt' in root or f.startswith('d') or 'manifest' in f:
        with open(os.path.join(root, f), 'wb') as fh:
          fh.write(b'garbage')
  model = state_lib.create_model(tiny_config)
  state = state_lib.create_train_state(jax.random.key(0), tiny_config, model)
  manager = checkpoints.create_manager(workdir, tiny_config)
  with caplog.at_level('WARNING'):
    restored = checkpoints.restore_latest(manager, state, workdir)
  assert int(restored.step) == 2
  assert 'latest readable checkpoint' in caplog.text


def test_non_finite_loss_stops_before_saving(tiny_config, tmp_path):
  workdir = str(tmp_path)
  tiny_config.num_train_steps = 2
  train.train_and_evaluate(tiny_config, workdir)
  before = {
    f: os.path.getmtime(os.path.join(r, f))
    for r, _, fs in os.walk(os.path.join(workdir, 'checkpoints'))
    for f in fs
  }
  tiny_config.num_train_steps = 6
  tiny_config.loss.dah.threshold = float('nan')  # W1 becomes NaN from step 3 on.
  with pytest.raises(FloatingPointError, match=r'Non-finite loss at step 3 \(.*w1 nan'):
    train.train_and_evaluate(tiny_config, workdir)
  after = {
    f: os.path.getmtime(os.path.join(r, f))
    for r, _, fs in os.walk(os.path.join(workdir, 'checkpoints'))
    for f in fs
  }
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2']
  assert after == before  # The last good checkpoint is untouched.


def test_workdir_of_another_run_is_refused(tiny_config, tmp_path):
  workdir = str(tmp_path)
  checkpoints.check_run_config(tiny_config, workdir)
  checkpoints.check_run_config(tiny_config, workdir)  # Same settings: accepted.
  full = open(os.path.join(workdir, 'config.json')).read()
  assert json.loads(full)['model']['bits'] == 8
  tiny_config.model.bits = 16
  tiny_config.data.protocol = 'dpfah_cifar10'
  with pytest.raises(
    ValueError,
    match=r'model.bits: workdir has 8, config has 16.*'
    r'data.protocol',
  ):
    checkpoints.check_run_config(tiny_config, workdir)
  assert open(os.path.join(workdir, 'config.json')).read() == full  # Left as it was.
  shutil.rmtree(workdir)


def test_a_workdir_records_the_head_and_older_records_without_it_resume(tmp_path):
  config = default.get_config()
  config.model_name = 'dpfah_resnet18'
  workdir = str(tmp_path)
  checkpoints.check_run_config(config, workdir)
  path = os.path.join(workdir, checkpoints.RUN_CONFIG_FILE)
  record = json.load(open(path))
  assert record['model.classifier_reads'] == 'features'
  assert record['model.hash_layer'] is None  # A field this model does not take.
  config.model.classifier_reads = 'sign_codes'
  with pytest.raises(ValueError, match='model.classifier_reads: workdir has'):
    checkpoints.check_run_config(config, workdir)
  # A record written before the field was recorded is not compared on it.
  del record['model.classifier_reads']
  json.dump(record, open(path, 'w'))
  checkpoints.check_run_config(config, workdir)
