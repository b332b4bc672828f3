"""results/campaign.sh, the reproduction campaign, as its dry run lays it out."""

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
