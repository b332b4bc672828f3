"""Tests of dahjax.compare: the table of several runs and the errors for missing ones."""

import json
import os
import subprocess
import sys

import pytest

from dahjax import compare


def fake_run(
  root,
  name,
  *,
  method,
  bits,
  map_,
  p1000,
  protocol='dah_cifar10',
  map_topk='ALL',
  checkpoints=True,
):
  workdir = root / name
  os.makedirs(workdir / 'eval')
  if checkpoints:
    os.makedirs(workdir / 'checkpoints')
  metrics = {
    'map': map_,
    'map_tie_aware': map_,
    'precision_at_1000': p1000,
    'precision_at_n': {'n': [1, 1000], 'precision': [1.0, p1000]},
    'precision_radius_2': 0.9,
    'bits': bits,
    'protocol': protocol,
    'map_topk': map_topk,
    'method': method,
  }
  (workdir / 'eval' / 'metrics.json').write_text(json.dumps(metrics))
  return str(workdir)


def test_table_has_a_row_per_method_and_a_column_per_code_length(tmp_path):
  workdirs = [
    fake_run(tmp_path, 'dah48', method='DAH', bits=48, map_=0.92311, p1000=0.91523),
    fake_run(tmp_path, 'dah12', method='DAH', bits=12, map_=0.92514, p1000=0.91594),
    fake_run(tmp_path, 'nonea12', method='NoneA-DAH', bits=12, map_=0.9208, p1000=0.9101),
  ]
  table = compare.markdown_table(compare.load_results(workdirs))
  assert table == (
    'mAP@ALL / P@1000 by code length:\n'
    '\n'
    '| method | protocol | 12 bits | 48 bits |\n'
    '|---|---|---|---|\n'
    '| DAH | dah_cifar10 | 0.9251 / 0.9159 | 0.9231 / 0.9152 |\n'
    '| NoneA-DAH | dah_cifar10 | 0.9208 / 0.9101 | - |\n'
  )


def test_rows_name_their_metric_when_protocols_differ(tmp_path):
  workdirs = [
    fake_run(
      tmp_path, 'a', method='DPFAH', bits=16, map_=0.8, p1000=0.7, protocol='dpfah_cifar10'
    ),
    fake_run(
      tmp_path,
      'b',
      method='DPFAH',
      bits=16,
      map_=0.6,
      p1000=0.5,
      protocol='dpfah_imagenet100',
      map_topk=1000,
    ),
  ]
  table = compare.markdown_table(compare.load_results(workdirs))
  assert table.splitlines()[0] == 'mAP@K / P@N by code length (K and N per row):'
  assert '| DPFAH | dpfah_cifar10 (mAP@ALL / P@1000) | 0.8000 / 0.7000 |' in table
  assert '| DPFAH | dpfah_imagenet100 (mAP@1000 / P@1000) | 0.6000 / 0.5000 |' in table


def test_two_runs_for_one_cell_are_refused(tmp_path):
  workdirs = [
    fake_run(tmp_path, n, method='DAH', bits=12, map_=0.9, p1000=0.9) for n in ('x', 'y')
  ]
  with pytest.raises(ValueError, match='x and .*y are both DAH at 12 bits'):
    compare.markdown_table(compare.load_results(workdirs))


def test_missing_metrics_name_the_workdir_and_the_eval_command(tmp_path):
  good = fake_run(tmp_path, 'good', method='DAH', bits=12, map_=0.9, p1000=0.9)
  trained = tmp_path / 'trained'
  os.makedirs(trained / 'checkpoints')
  with pytest.raises(FileNotFoundError) as error:
    compare.load_results([good, str(trained), str(tmp_path / 'nowhere')])
  message = str(error.value)
  assert 'good' not in message
  assert (
    f'{trained}/eval/metrics.json does not exist; evaluate the run: python -m '
    f'dahjax.main --config <its config> --workdir {trained} --mode=eval'
  ) in message
  assert f'{tmp_path / "nowhere"} is not a directory' in message


def test_untrained_workdir_is_told_to_train(tmp_path):
  os.makedirs(tmp_path / 'fresh')
  with pytest.raises(FileNotFoundError, match='no checkpoints: this trains'):
    compare.load_result(str(tmp_path / 'fresh'))


def test_older_metrics_without_a_method_are_named_by_model_or_workdir(tmp_path):
  workdir = fake_run(tmp_path, 'old_run', method=None, bits=12, map_=0.9, p1000=0.9)
  assert compare.load_result(workdir).method == 'old_run'


def test_command_line_prints_and_writes_the_table(tmp_path):
  workdir = fake_run(tmp_path, 'dah12', method='DAH', bits=12, map_=0.9, p1000=0.8)
  output = tmp_path / 'table.md'
  run = subprocess.run(
    [sys.executable, '-m', 'dahjax.compare', workdir, f'--output={output}'],
    capture_output=True,
    text=True,
    check=True,
  )
  assert '| DAH | dah_cifar10 | 0.9000 / 0.8000 |' in run.stdout
  assert output.read_text() == run.stdout

  missing = subprocess.run(
    [sys.executable, '-m', 'dahjax.compare', str(tmp_path / 'none')],
    capture_output=True,
    text=True,
  )
  assert missing.returncode == 1
  assert 'is not a directory' in missing.stderr and 'Traceback' not in missing.stderr


def test_paper_numbers_beside_ours(tmp_path):
  run = tmp_path / 'dah_12'
  os.makedirs(run)  # A results/<run>/ directory: metrics.json at its top.
  with open(run / 'metrics.json', 'w') as f:
    json.dump(
      {
        'bits': 12,
        'map': 0.5,
        'protocol': 'dah_cifar10',
        'method': 'DAH',
        'map_topk': 'ALL',
        'precision_at_1000': 0.4,
      },
      f,
    )
  other = fake_run(tmp_path, 'csq_12', method='CSQ', bits=12, map_=0.3, p1000=0.2)
  table = compare.markdown_table(
    compare.load_results([str(run), other]), compare.paper_results()
  )
  assert '| DAH | dah_cifar10 | 0.5000 / 0.4000 |' in table
  # The paper's row comes from configs/papers.py (DAH Tables 2 and 3 at 12 bits).
  assert '| DAH (paper) | dah_cifar10 | 0.9251 / 0.9159 |' in table
  # No paper gives CSQ on DAH's protocol: its row stands alone.
  assert '| CSQ | dah_cifar10 | 0.3000 / 0.2000 |' in table
  assert 'CSQ (paper)' not in table


def test_budget_table_gives_each_runs_recorded_budget(tmp_path):
  new = fake_run(tmp_path, 'dah12', method='DAH', bits=12, map_=0.5, p1000=0.4)
  metrics_path = os.path.join(new, 'eval', 'metrics.json')
  metrics = json.load(open(metrics_path))
  metrics.update(
    step=25000,
    epochs=10.0,
    train_seconds=3 * 3600 + 5 * 60 + 31,
    hardware='AMD EPYC, 2 cores',
    evaluated_on='2026-12-05',
  )
  open(metrics_path, 'w').write(json.dumps(metrics))
  old = fake_run(tmp_path, 'dah48', method='DAH', bits=48, map_=0.6, p1000=0.5)
  table = compare.budget_table(compare.load_results([new, old]))
  assert table.splitlines()[2:] == [
    '| run | method | bits | steps | epochs | training time | hardware | evaluated |',
    '|---|---|---|---|---|---|---|---|',
    f'| {new} | DAH | 12 | 25,000 | 10 | 3 h 06 min | AMD EPYC, 2 cores | 2026-12-05 |',
    f'| {old} | DAH | 48 | - | - | - | - | - |',  # Evaluated before budgets were kept.
  ]
  run = subprocess.run(
    [sys.executable, '-m', 'dahjax.compare', new, '--budget'],
    capture_output=True,
    text=True,
    check=True,
  )
  assert run.stdout == compare.tables(compare.load_results([new]), False, True)
  assert run.stdout.endswith('| 3 h 06 min | AMD EPYC, 2 cores | 2026-12-05 |\n')
