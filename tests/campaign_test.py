"""results/campaign.sh, the reproduction campaign, as its dry run lays it out."""

import importlib
import json
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'results', 'campaign.sh')


def dry_run(root, *runs, cores='0,1', split=False, script=SCRIPT):
  env = {
    **os.environ,
    'DRY_RUN': '1',
    'CORES': cores,
    'PORT': '4321',
    'SPLIT': str(int(split)),
  }
  out = subprocess.run(
    ['bash', str(script), str(root), *runs],
    env=env,
    capture_output=True,
    text=True,
    check=True,
  )
  return [line for line in out.stdout.splitlines() if not line.startswith('==')]


def empty_tree(tmp_path):
  """The campaign script in a tree whose results/ holds no finished run."""
  script = tmp_path / 'tree' / 'results' / 'campaign.sh'
  script.parent.mkdir(parents=True)
  shutil.copy(SCRIPT, script)
  return script


def test_a_finished_run_is_skipped(tmp_path):
  assert os.path.exists(os.path.join(ROOT, 'results', 'dah_cifar10_12', 'metrics.json'))
  assert dry_run(tmp_path, 'dah_cifar10_12') == []
  assert len(dry_run(tmp_path, 'dah_cifar10_12', script=empty_tree(tmp_path))) == 1


def test_a_run_is_one_process_on_the_cores_or_split_over_them(tmp_path):
  script = empty_tree(tmp_path)
  (line,) = dry_run(tmp_path, 'dah_cifar10_12', script=script)
  assert line.startswith(
    'taskset -c 0,1 python -m dahjax.main --config configs/dah_cifar10.py'
  )
  assert '--config.plateau.evaluations=3' in line and 'num_processes' not in line
  lines = dry_run(tmp_path, 'dah_cifar10_12', split=True, script=script)
  assert len(lines) == 2
  for i, line in enumerate(lines):
    assert line.startswith(f'env JAX_PLATFORMS=cpu taskset -c {i} python -m dahjax.main ')
    assert f'--num_processes=2 --process_id={i}' in line
    assert '--coordinator_address=127.0.0.1:4321' in line
    assert '--config.plateau.evaluations=3' in line and '--config.model.bits=12' in line
  # One core: one process, no coordinator.
  (line,) = dry_run(tmp_path, 'nonea_dah_cifar10_12', cores='1', split=True, script=script)
  assert line.startswith(
    'taskset -c 1 python -m dahjax.main --config configs/dah_cifar10.py'
  )
  assert '--config.model.attention=none' in line and 'num_processes' not in line


def test_the_comparison_splits_its_methods_over_the_cores_and_keeps_finished_runs(tmp_path):
  lines = dry_run(tmp_path, 'comparison_12')
  kept = os.path.join('results', 'comparison', 'dsh_12')
  assert os.path.exists(os.path.join(ROOT, kept, 'metrics.json'))
  assert (
    f'cp {kept}/metrics.json {kept}/codes.npz {tmp_path}/comparison/dsh_12/eval/' in lines
  )
  runs = [line for line in lines if ' -m dahjax.comparison ' in line]
  assert [r.split()[:3] for r in runs] == [['taskset', '-c', '0'], ['taskset', '-c', '1']]
  methods = [r.split('--methods ')[1].split(',') for r in runs]
  assert methods[0][:3] == ['dsh', 'hashnet', 'dpfah'] and methods[1][:2] == ['dpsh', 'dah']
  assert len(methods[0]) + len(methods[1]) == 13
  assert all('--bits 12' in r for r in runs)


def test_an_unknown_run_is_refused(tmp_path):
  out = subprocess.run(
    ['bash', SCRIPT, str(tmp_path), 'dah_cifar10_96'], capture_output=True
  )
  assert out.returncode == 2 and b'unknown run dah_cifar10_96' in out.stderr


def test_the_paper_schedule_goes_on_from_the_release_runs_step_20000(tmp_path):
  script = empty_tree(tmp_path)
  # No release run: the paper's schedule trains from step 0.
  (line,) = dry_run(tmp_path, 'dsh_cifar10_12', script=script)
  assert line.startswith(
    'taskset -c 0,1 python -m dahjax.main --config configs/dsh_cifar10.py'
  )
  assert f'--workdir {tmp_path}/dsh_cifar10_12 ' in line
  source = tmp_path / 'dsh_cifar10_12_release'
  (source / 'checkpoints' / '20000').mkdir(parents=True)
  (source / 'eval').mkdir()
  (source / 'eval' / 'curve.jsonl').write_text(
    ''.join(f'{{"step": {s}, "map": 0.{s}}}\n' for s in (17500, 20000, 22500))
  )
  lines = dry_run(tmp_path, 'dsh_cifar10_12', script=script)
  target = tmp_path / 'dsh_cifar10_12'
  assert f'cp -r {source}/checkpoints/20000 {target}/checkpoints/' in lines
  assert f'cp {source}/run_config.json {source}/splits.json {target}/' in lines
  assert lines[-1] == line
  # For real, with a stand-in for the training: the workdir starts at step 20,000 with
  # the curve up to there, and the finished run's files are kept.
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  fake = bin_dir / 'taskset'
  fake.write_text(
    '#!/usr/bin/env bash\n'
    'prev=; for a in "$@"; do [ "$prev" = --workdir ] && w=$a; prev=$a; done\n'
    'echo "$@" > "$w/eval/command"\n'
    'touch "$w"/eval/{metrics.json,codes.npz,learning_curve.png}\n'
  )
  fake.chmod(0o755)
  (source / 'run_config.json').write_text('{}')
  (source / 'splits.json').write_text('{}')
  env = {**os.environ, 'CORES': '0', 'PATH': f'{bin_dir}:{os.environ["PATH"]}'}
  subprocess.run(
    ['bash', str(script), str(tmp_path), 'dsh_cifar10_12'],
    env=env,
    check=True,
    capture_output=True,
  )
  assert (target / 'checkpoints' / '20000').is_dir()
  kept = script.parent / 'dsh_cifar10_12'
  assert [json.loads(r)['step'] for r in open(kept / 'curve.jsonl')] == [17500, 20000]
  assert 'configs/dsh_cifar10.py' in (target / 'eval' / 'command').read_text()


def test_each_48_bit_fine_tune_starts_from_its_12_bit_run(tmp_path):
  script = empty_tree(tmp_path)
  for run, source in (
    ('dsh_cifar10_48', 'dsh_cifar10_12'),
    ('dsh_cifar10_48_release', 'dsh_cifar10_12_release'),
  ):
    (line,) = dry_run(tmp_path, run, script=script)
    assert '--config configs/dsh_cifar10_48.py' in line
    assert f'--workdir {tmp_path}/{run} ' in line
    assert f'--config.model.init_from={tmp_path}/{source} ' in line
    # Not dry: refused until the 12-bit run has checkpoints.
    out = subprocess.run(['bash', str(script), str(tmp_path), run], capture_output=True)
    assert out.returncode == 2 and f'run {source} first'.encode() in out.stderr
    # Finished on another machine: its results are kept, its checkpoints are not.
    kept = script.parent / source
    kept.mkdir()
    (kept / 'metrics.json').write_text('{}')
    out = subprocess.run(['bash', str(script), str(tmp_path), run], capture_output=True)
    assert out.returncode == 2 and f'move results/{source} aside'.encode() in out.stderr
    assert len(out.stderr.decode().splitlines()) == 1


def _flag(line, name, default=None):
  values = [a.split('=', 1)[1] for a in line.split() if a.startswith(f'--{name}=')]
  return values[-1] if values else default


def _config(line):
  """The config of a command's `--config configs/<name>.py`, as configs_test loads it."""
  name = os.path.basename(line.split(' --config ')[1].split()[0]).removesuffix('.py')
  return importlib.import_module(f'configs.{name}').get_config()


def test_dshs_runs_keep_a_checkpoint_every_epoch(tmp_path):
  """Every epoch's checkpoint stays, so a run's curve can be recomputed afterwards."""
  script = empty_tree(tmp_path)
  lines = dry_run(tmp_path, 'comparison_48', script=script)
  runs = [line for line in lines if ' -m dahjax.comparison ' in line]
  for run in ('dsh_cifar10_12_release', 'dsh_cifar10_12', 'dsh_cifar10_48'):
    runs += dry_run(tmp_path, run, script=script)
  assert len(runs) == 5
  for line in runs:
    config = _config(line)
    steps = int(_flag(line, 'config.num_train_steps', config.num_train_steps))
    every = int(_flag(line, 'config.checkpoint_every_steps'))
    assert every == 50_000 // config.batch_size  # an epoch of CIFAR-10's training set
    assert int(_flag(line, 'config.max_checkpoints_to_keep')) >= steps // every
