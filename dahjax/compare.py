"""Compares evaluated runs in a markdown table shaped like the papers' tables.

  python -m dahjax.compare runs/dah_12 runs/dah_24 runs/nonea_12 [--output table.md]
  python -m dahjax.compare results/* --paper    # the papers' numbers beside ours

Reads `<workdir>/eval/metrics.json` of each workdir (written by `--mode=eval` or at the
end of training), or `<dir>/metrics.json` of a results directory, and prints one row per
method and protocol, one column per code length (ascending), each cell `mAP / P@N` with
the mAP@K and N of the runs' evaluation. With `--paper`, each row is followed by the
paper's numbers (`configs/papers.py`; run from the repository root). With `--budget`, a
second table gives each run's budget as its evaluation recorded it: steps, epochs,
training wall time, hardware and the date of the evaluation.
"""

from collections.abc import Sequence
import dataclasses
import json
import os
import re
import sys

from absl import app
from absl import flags

from dahjax import atomic

METRICS_FILE = os.path.join('eval', 'metrics.json')

_OUTPUT = flags.DEFINE_string('output', None, 'Also write the table to this markdown file.')
_PAPER = flags.DEFINE_bool(
  'paper', False, "Put the papers' numbers (configs/papers.py) beside ours."
)
_BUDGET = flags.DEFINE_bool(
  'budget', False, "Add a table of each run's steps, epochs, training time and hardware."
)


@dataclasses.dataclass(frozen=True)
class Result:
  """The numbers of one evaluated run that the table shows."""

  workdir: str
  method: str
  protocol: str
  bits: int
  map: float
  map_topk: str  # 'ALL' or K of mAP@K.
  precision: float | None  # precision@N, None when not computed.
  precision_n: int | None
  # The budget, as far as the evaluation recorded it (older runs: None).
  step: int | None = None
  epochs: float | None = None
  train_seconds: float | None = None
  hardware: str | None = None
  evaluated_on: str | None = None


def _missing_message(workdir: str) -> str:
  how = f'python -m dahjax.main --config <its config> --workdir {workdir} --mode=eval'
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    how = (
      f'python -m dahjax.main --config <config> --workdir {workdir} (it has no '
      'checkpoints: this trains, then evaluates)'
    )
  return f'{os.path.join(workdir, METRICS_FILE)} does not exist; evaluate the run: {how}'


def _precision_at(metrics: dict) -> tuple[float | None, int | None]:
  # The scalar key is precision_at_<N>; 'precision_at_n' is the curve.
  for key, value in metrics.items():
    match = re.fullmatch(r'precision_at_(\d+)', key)
    if match:
      return float(value), int(match.group(1))
  return None, None


def load_result(workdir: str) -> Result:
  """Reads the result of `workdir`; FileNotFoundError says how to evaluate it."""
  if not os.path.isdir(workdir):
    raise FileNotFoundError(
      f'{workdir} is not a directory: pass workdirs of python -m dahjax.main.'
    )
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path) and os.path.exists(os.path.join(workdir, 'metrics.json')):
    path = os.path.join(workdir, 'metrics.json')  # A results/<run>/ directory.
  if not os.path.exists(path):
    raise FileNotFoundError(_missing_message(workdir))
  with open(path) as f:
    try:
      metrics = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(
        f'{path} is not valid JSON ({e}); re-evaluate the run: python -m '
        f'dahjax.main --config <its config> --workdir {workdir} '
        '--mode=eval'
      ) from e
  missing = [k for k in ('bits', 'map', 'protocol') if k not in metrics]
  if missing:
    raise ValueError(
      f'{path} lacks {", ".join(missing)}; re-evaluate the run: '
      f'python -m dahjax.main --config <its config> --workdir {workdir} '
      '--mode=eval'
    )
  # Runs evaluated before the method was recorded are named by their model or workdir.
  method = (
    metrics.get('method')
    or metrics.get('model')
    or os.path.basename(os.path.normpath(workdir))
  )
  precision, n = _precision_at(metrics)
  return Result(
    workdir=workdir,
    method=method,
    protocol=metrics['protocol'],
    bits=int(metrics['bits']),
    map=float(metrics['map']),
    map_topk=str(metrics.get('map_topk', 'ALL')),
    precision=precision,
    precision_n=n,
    step=metrics.get('step'),
    epochs=metrics.get('epochs'),
    train_seconds=metrics.get('train_seconds'),
    hardware=metrics.get('hardware'),
    evaluated_on=metrics.get('evaluated_on'),
  )


def load_results(workdirs: Sequence[str]) -> list[Result]:
  """Results of all `workdirs`; one error lists every workdir that lacks them."""
  results, errors = [], []
  for workdir in workdirs:
    try:
      results.append(load_result(workdir))
    except (FileNotFoundError, ValueError) as e:
      errors.append(str(e))
  if errors:
    raise FileNotFoundError('\n'.join(errors))
  return results


def _metric_label(result: Result) -> str:
  precision = f'P@{result.precision_n}' if result.precision_n else 'P@N'
  return f'mAP@{result.map_topk} / {precision}'


def _cell(result: Result) -> str:
  precision = '-' if result.precision is None else f'{result.precision:.4f}'
  return f'{result.map:.4f} / {precision}'


def paper_results() -> dict:
  """The papers' numbers by (method, protocol) and bits (`configs/papers.py`)."""
  try:
    from configs import papers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise FileNotFoundError(
      '--paper reads configs/papers.py: run from the repository root.'
    ) from e
  return papers.PAPER_RESULTS


def _paper_cell(numbers: dict | None, precision_n: int | None) -> str:
  if not numbers:
    return '-'
  precision = numbers.get(f'precision_at_{precision_n}') if precision_n else None
  return f'{numbers["map"]:.4f} / ' + ('-' if precision is None else f'{precision:.4f}')


def markdown_table(results: Sequence[Result], paper: dict | None = None) -> str:
  """A caption line and a markdown table: rows (method, protocol), columns bits.

  Rows keep the order in which their first run appears. When all rows share mAP@K and
  P@N the caption names them; otherwise each row's protocol cell does. With `paper`
  ((method, protocol) -> bits -> metrics), a row whose paper reports one of the table's
  code lengths on its protocol is followed by '<method> (paper)'.
  """
  if not results:
    raise ValueError('No results to compare: pass one or more workdirs.')
  labels = {_metric_label(r) for r in results}
  uniform = len(labels) == 1
  rows: dict[tuple[str, str, str], dict[int, Result]] = {}
  for r in results:
    cells = rows.setdefault((r.method, r.protocol, _metric_label(r)), {})
    if r.bits in cells:
      raise ValueError(
        f'{cells[r.bits].workdir} and {r.workdir} are both {r.method} '
        f'at {r.bits} bits on {r.protocol}: pass one of them.'
      )
    cells[r.bits] = r
  bits = sorted({r.bits for r in results})
  caption = (
    f'{labels.pop()} by code length'
    if uniform
    else 'mAP@K / P@N by code length (K and N per row)'
  )
  lines = [
    caption + ':',
    '',
    '| ' + ' | '.join(['method', 'protocol', *(f'{b} bits' for b in bits)]) + ' |',
    '|' + '---|' * (2 + len(bits)),
  ]
  for (method, protocol, label), cells in rows.items():
    name = protocol if uniform else f'{protocol} ({label})'
    values = [_cell(cells[b]) if b in cells else '-' for b in bits]
    lines.append('| ' + ' | '.join([method, name, *values]) + ' |')
    published = (paper or {}).get((method, protocol), {})
    if any(b in published for b in bits):
      n = next(iter(cells.values())).precision_n
      values = [_paper_cell(published.get(b), n) for b in bits]
      lines.append('| ' + ' | '.join([f'{method} (paper)', name, *values]) + ' |')
  return '\n'.join(lines) + '\n'


def _duration(seconds: float | None) -> str:
  if seconds is None:
    return '-'
  minutes = round(seconds / 60)
  return f'{minutes // 60} h {minutes % 60:02d} min' if minutes >= 60 else f'{minutes} min'


def budget_table(results: Sequence[Result]) -> str:
  """A markdown table of each run's budget, one row per run in the given order; '-'
  where its evaluation did not record a value."""
  lines = [
    'Budget of each run:',
    '',
    '| run | method | bits | steps | epochs | training time | hardware | evaluated |',
    '|' + '---|' * 8,
  ]
  for r in results:
    cells = [
      r.workdir,
      r.method,
      str(r.bits),
      '-' if r.step is None else f'{r.step:,}',
      '-' if r.epochs is None else f'{r.epochs:.4g}',
      _duration(r.train_seconds),
      r.hardware or '-',
      r.evaluated_on or '-',
    ]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def tables(results: Sequence[Result], paper: bool, budget: bool) -> str:
  """`markdown_table` of `results` (with the papers' numbers when `paper`), followed by
  their `budget_table` when `budget`."""
  text = markdown_table(results, paper_results() if paper else None)
  return text + ('\n' + budget_table(results) if budget else '')


def main(argv: Sequence[str]) -> None:
  workdirs = argv[1:]
  if not workdirs:
    raise app.UsageError(
      'Pass the workdirs to compare: python -m dahjax.compare W1 W2 ... [--output table.md]'
    )
  try:
    table = tables(load_results(workdirs), _PAPER.value, _BUDGET.value)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'error: {e}')  # The message says what to do; a traceback would bury it.
  print(table, end='')
  if _OUTPUT.value:
    atomic.write_text(_OUTPUT.value, table)


if __name__ == '__main__':
  app.run(main)
