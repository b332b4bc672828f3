"""Where a train step's time goes: XLA's operations grouped by kind, from a profile.

  python benchmarks/profile_step.py --setting dah --batch 20
  python benchmarks/profile_step.py --setting dpfah32 --batch 128 --variant xla

Runs a few steps of the project's train step (`benchmarks/train_speed.py` settings and
variants) under `jax.profiler`, reads the trace's per-operation times, joins them with the
compiled HLO and prints the share of each kind: matrix products, convolutions (forward,
input gradient, weight gradient), layout copies (transposes, often fused with BatchNorm's
backward pass), max pooling and other elementwise fusions. Operations run on two threads
at once, so shares are of the summed operation time. With the fast path, XLA's Eigen
convolutions run outside the traced operations: they are the step time the trace leaves
unaccounted for. Appends the table to docs/benchmarks.md.
"""

import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position
from benchmarks import train_speed  # pylint: disable=wrong-import-position

_SETTING = flags.DEFINE_enum('setting', 'dah', list(train_speed.SETTINGS), 'Setting.')
_BATCH = flags.DEFINE_integer('batch', 20, 'Batch size.')
_VARIANT = flags.DEFINE_enum('variant', 'fast', ['fast', 'xla'], 'Fast path on or off.')
_PROFILE_STEPS = flags.DEFINE_integer('profile_steps', 3, 'Steps under the profiler.')


def fusion_kinds(hlo_text: str) -> dict[str, str]:
  """Maps each top-level instruction name of the compiled HLO to a kind of operation."""
  bodies, current = {}, None
  for line in hlo_text.splitlines():
    # op_name metadata names JAX's transforms ("transpose(jvp(...))"): not operations.
    line = re.sub(r', metadata=\{[^}]*\}', '', line)
    header = re.match(r'^(?:ENTRY )?%?([\w.\-]+) .*\{$', line)
    if header:
      current = header.group(1)
      bodies[current] = []
    elif current:
      bodies[current].append(line)
  kinds = {}
  for lines in bodies.values():
    for line in lines:
      m = re.match(r'\s*%?([\w.\-]+) = (\S+) ([\w\-]+)\((.*)', line)
      if not m:
        continue
      name, shape, op, rest = m.groups()
      called = re.search(r'calls=%?([\w.\-]+)', rest)
      body = '\n'.join(bodies.get(called.group(1), [])) if called else line
      kinds[name] = classify(op, shape, body)
  return kinds


def classify(op: str, shape: str, body: str) -> str:
  if ' convolution(' in body or op == 'convolution':
    window = re.search(r'window=\{size=(\d+)x', body)
    dims = re.search(r'f32\[(\d+),(\d+),(\d+),(\d+)\]', shape)
    if dims and window and int(window.group(1)) > 7:
      return 'convolution, weight gradient'
    if 'feature_group_count' in body:
      return 'convolution, depthwise'
    return 'convolution, forward or input gradient'
  if ' dot(' in body or op == 'dot':
    return 'matrix product'
  if ' transpose(' in body or ' copy(' in body or op in ('transpose', 'copy'):
    return 'layout copy (transpose)'
  if 'scatter' in body or 'select-and-scatter' in body or 'reduce-window' in body:
    return 'pooling (XLA)'
  if ' reduce(' in body:
    return 'reduction'
  if 'pad(' in body or 'slice(' in body:
    return 'shifted slices (pad/slice fusions)'
  return 'elementwise'


def main(argv):
  del argv
  task = dict(setting=_SETTING.value, variant=_VARIANT.value)
  from dahjax.models import conv  # pylint: disable=g-import-not-at-top

  if _VARIANT.value == 'fast':
    conv.configure_cpu_backend()
  import jax  # pylint: disable=g-import-not-at-top

  step, state, batch = train_speed.build_step(task, _BATCH.value)
  compiled = step.lower(state, batch).compile()
  for _ in range(2):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  trace_dir = tempfile.mkdtemp()
  start = time.perf_counter()
  with jax.profiler.trace(trace_dir):
    for _ in range(_PROFILE_STEPS.value):
      state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
  wall_ms = 1e3 * (time.perf_counter() - start) / _PROFILE_STEPS.value
  path = sorted(glob.glob(f'{trace_dir}/plugins/profile/*/*.trace.json.gz'))[-1]
  with gzip.open(path) as f:
    events = json.load(f)['traceEvents']
  kinds = fusion_kinds(compiled.as_text())
  totals = collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and e.get('name') in kinds:
      totals[kinds[e['name']]] += e['dur'] / 1e3 / _PROFILE_STEPS.value
  summed = sum(totals.values())
  lines = [
    '| kind of operation | ms per step (summed over threads) | share |',
    '|---|---|---|',
  ]
  lines += [f'| {k} | {v:.0f} | {100 * v / summed:.0f}% |' for k, v in totals.most_common()]
  body = '\n'.join(lines) + (
    f'\n\n{train_speed.LABELS[_SETTING.value]}, batch {_BATCH.value}, fast path '
    f'{"on" if _VARIANT.value == "fast" else "off"}: {wall_ms:.0f} ms per step under '
    f'the profiler; traced operations sum to {summed:.0f} ms over 2 threads.'
  )
  print(body)
  report.append(
    flags.FLAGS.output,
    f'Profile of a train step: {_SETTING.value}, batch {_BATCH.value}, {_VARIANT.value}',
    body,
  )


if __name__ == '__main__':
  app.run(main)
