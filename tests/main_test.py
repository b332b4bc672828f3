"""The command line: bad flags, config fields and workdirs end in one `dahjax:` line."""

import subprocess
import sys

import pytest


def run_main(*args, cwd=None):
  return subprocess.run(
    [sys.executable, '-m', 'dahjax.main', *args],
    capture_output=True,
    text=True,
    timeout=300,
    cwd=cwd,
  )


def assert_one_line(proc, *fragments):
  assert proc.returncode != 0
  assert 'Traceback' not in proc.stderr, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.startswith('dahjax: ')]
  assert len(lines) == 1, proc.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
  'flag, fragments',
  [
    ('--config.model.bitz=12', ('--config.model.bitz', "'bitz'", "did you mean 'bits'")),
    ('--config.modl.bits=12', ('--config.modl.bits', "'modl'", "did you mean 'model'")),
    ('--config.zzzz=1', ('--config.zzzz', "'zzzz'", 'configs/default.py')),
  ],
)
def test_misspelt_config_field(flag, fragments, tmp_path):
  proc = run_main(
    '--config', 'configs/quickstart.py', '--workdir', str(tmp_path / 'w'), flag
  )
  assert_one_line(proc, *fragments)
  assert not (tmp_path / 'w').exists()  # Nothing was created.


def test_eval_without_checkpoint(tmp_path):
  workdir = tmp_path / 'empty'
  proc = run_main(
    '--config', 'configs/quickstart.py', '--workdir', str(workdir), '--mode=eval'
  )
  assert_one_line(proc, 'No checkpoint in', 'python -m dahjax.main --config')


def test_real_config_without_data_dir(tmp_path):
  proc = run_main('--config', 'configs/dah_cifar10.py', '--workdir', str(tmp_path / 'w'))
  assert_one_line(
    proc,
    'config.data.data_dir is not set',
    '--config.data.data_dir=',
    '<root>/<split>/<class name>',
  )
