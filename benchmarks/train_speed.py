"""Training and encoding speed of dahjax's models, with the CPU fast path off and on,
beside PyTorch/torchvision's ResNet18 on the same cores when torch is installed.

  python benchmarks/train_speed.py                      # every setting, 1 round
  python benchmarks/train_speed.py --settings dpfah32 --rounds 3

For each setting and variant a fresh process (XLA reads its CPU flags once per process)
times the project's own jitted train step and encoder on synthetic images, compilation
excluded:

  xla       conv_impl='xla' and XLA's default CPU flags (the fast path off);
  fast      conv_impl='slices' plus `conv.configure_cpu_backend()` (the fast path on);
  pytorch   torchvision's resnet18 (with the CIFAR stem at 32 px), same batch, same
            optimiser (Adam), `pip install torch torchvision` (optional).

Each process also measures the machine's float32 matrix-product speed (2048^3, through
XLA), so achieved GFLOP/s are set against it in the same moment. Model FLOPs come from
XLA's cost analysis of the train step with XLA's convolutions (the same count for every
variant). Variants alternate within each round and the table shows the median over
rounds, since this machine is shared and its speed drifts. Results are appended to
docs/benchmarks.md with the command, machine and date.
"""

import json
import os
import statistics
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position
from benchmarks import steps  # pylint: disable=wrong-import-position

_DPFAH_LOSS = dict(alpha=0.5, delta=1.1, eta=10.0, zeta=0.1)
# name -> (config overrides, image size, train batch sizes, torch stem or None)
SETTINGS = {
  'dah': (
    dict(model_name='dah_resnet30', loss_name='dah', model=dict(bits=48, num_classes=10)),
    32,
    (20, 128),
    None,
  ),
  'dpfah32': (
    dict(
      model_name='dpfah_resnet18',
      loss_name='dpfah',
      loss=_DPFAH_LOSS,
      model=dict(bits=48, num_classes=10, stem='cifar', attention='stem'),
    ),
    32,
    (128,),
    'cifar',
  ),
  'dpfah224': (
    dict(
      model_name='dpfah_resnet18',
      loss_name='dpfah',
      loss=_DPFAH_LOSS,
      model=dict(bits=48, num_classes=100, stem='imagenet', attention='stem'),
    ),
    224,
    (32,),
    'imagenet',
  ),
  'dsh': (
    dict(model_name='dsh_cnn', loss_name='dsh', model=dict(bits=12, num_classes=10)),
    32,
    (200,),
    None,
  ),
}
LABELS = {
  'dah': 'DAH ResNet30+CBAM, 48 bits',
  'dpfah32': 'DPFAH ResNet18+PFA, CIFAR stem',
  'dpfah224': 'DPFAH ResNet18+PFA, ImageNet stem',
  'dsh': "DSH's CNN, 12 bits",
}

_SETTINGS = flags.DEFINE_list('settings', list(SETTINGS), 'Settings to measure.')
_VARIANTS = flags.DEFINE_list(
  'variants',
  ['xla', 'fast', 'pytorch'],
  'Variants: xla, fast, pytorch (skipped without torch).',
)
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed train steps per measurement.')
_ENCODE_BATCH = flags.DEFINE_integer('encode_batch', 512, 'Encoding batch size.')
_ROUNDS = flags.DEFINE_integer('rounds', 1, 'Rounds of all variants; medians are shown.')
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(ROOT, 'docs', 'benchmarks.md'),
  'Markdown file to append to; empty to only print.',
)
_WORKER = flags.DEFINE_string('worker', None, 'Internal: JSON task of one worker process.')


def timed(fn, n: int) -> float:
  """Seconds per call of `fn` (returns something to block on), after one warm-up."""
  import jax  # pylint: disable=g-import-not-at-top

  jax.block_until_ready(fn())
  start = time.perf_counter()
  for _ in range(n):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / n


def matmul_gflops() -> float:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  n = 2048
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  return 2 * n**3 / min(timed(lambda: f(a), 3) for _ in range(3)) / 1e9


def build_config(setting: str, variant: str):
  """The default config with a setting's overrides; conv_impl from the variant."""
  from configs import default  # pylint: disable=g-import-not-at-top

  overrides, size, _, _ = SETTINGS[setting]
  config = default.get_config()
  config.unlock()
  config.model_name, config.loss_name = overrides['model_name'], overrides['loss_name']
  config.model.update(overrides['model'])
  config.loss[config.loss_name].update(overrides.get('loss', {}))
  config.data.image_size = size
  config.model.conv_impl = 'slices' if variant == 'fast' else 'xla'
  return config


def build_step(task: dict, batch_size: int, config=None):
  """(jitted train step, replicated state, sharded batch of random images)."""
  config = config or build_config(task['setting'], task['variant'])
  return steps.train_step_setup(config, batch_size)


def jax_worker(task: dict) -> dict:
  """Train and encode speed of one setting under one variant, in this process."""
  from dahjax.models import conv  # pylint: disable=g-import-not-at-top

  if task['variant'] == 'fast':
    conv.configure_cpu_backend()
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from dahjax import encode  # pylint: disable=g-import-not-at-top
  from dahjax import parallel  # pylint: disable=g-import-not-at-top
  from dahjax import state as state_lib  # pylint: disable=g-import-not-at-top

  _, size, batches, _ = SETTINGS[task['setting']]
  config = build_config(task['setting'], task['variant'])
  result = {'matmul_gflops': matmul_gflops(), 'train': {}}
  for b in batches:
    step, state, batch = build_step(task, b, config)
    # FLOPs of the model as written with XLA's convolutions, the same for every variant.
    xla_step, xla_state, _ = build_step(dict(task, variant='xla'), b)
    flops = xla_step.lower(xla_state, batch).cost_analysis()['flops']
    compiled = step.lower(state, batch).compile()
    holder = [state]

    def one_step():
      holder[0], metrics = step(holder[0], batch)
      return metrics['loss']

    seconds = timed(one_step, task['steps'])
    result['train'][str(b)] = {
      'images_per_sec': b / seconds,
      'gflops': flops / seconds / 1e9,
      'temp_mib': compiled.memory_analysis().temp_size_in_bytes / 2**20,
    }
  state = holder[0]
  mesh = parallel.create_mesh()
  model = state_lib.create_model(config)
  variables = jax.device_put(
    {'params': state.params, 'batch_stats': state.batch_stats}, parallel.replicated(mesh)
  )
  encoder = encode.make_encoder(model, mesh, encode.encode_chunk_size(0))
  images = np.random.default_rng(1).random(
    (task['encode_batch'], size, size, 3), dtype=np.float32
  )
  seconds = timed(lambda: encoder(variables, images), 2)
  result['encode_images_per_sec'] = task['encode_batch'] / seconds
  return result


def torch_worker(task: dict) -> dict:
  """torchvision's ResNet18 train step (Adam) and inference at the setting's sizes."""
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top

  _, size, batches, stem = SETTINGS[task['setting']]
  model = torchvision.models.resnet18(num_classes=10 if stem == 'cifar' else 100)
  if stem == 'cifar':
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
  opt = torch.optim.Adam(model.parameters(), 1e-3)
  result = {'train': {}}
  for b in batches:
    x = torch.rand(b, 3, size, size)
    y = torch.arange(b) % 10

    def one_step():
      opt.zero_grad()
      loss = torch.nn.functional.cross_entropy(model(x), y)
      loss.backward()
      opt.step()

    one_step()
    start = time.perf_counter()
    for _ in range(task['steps']):
      one_step()
    result['train'][str(b)] = {
      'images_per_sec': b * task['steps'] / (time.perf_counter() - start)
    }
  model.eval()
  x = torch.rand(task['encode_batch'], 3, size, size)
  with torch.no_grad():
    model(x)
    start = time.perf_counter()
    for _ in range(2):
      model(x)
  result['encode_images_per_sec'] = 2 * task['encode_batch'] / (time.perf_counter() - start)
  result['version'] = f'torch {torch.__version__}, torchvision {torchvision.__version__}'
  return result


def median_of(results: list[dict], *keys) -> float | None:
  values = []
  for r in results:
    for k in keys:
      r = r.get(k) if isinstance(r, dict) else None
    if r is not None:
      values.append(r)
  return statistics.median(values) if values else None


def fmt(v, spec='.1f', suffix=''):
  return '-' if v is None else f'{v:{spec}}{suffix}'


def table(results: dict) -> str:
  """Markdown rows per (setting, batch) and per setting's encoding."""
  lines = [
    '| setting | measurement | fast path off (xla) | fast path on | on / off | '
    'PyTorch | on / PyTorch | GFLOP/s on | % of matmul | step memory on |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for setting in _SETTINGS.value:
    _, size, batches, _ = SETTINGS[setting]
    res = {v: results.get((setting, v), []) for v in ('xla', 'fast', 'pytorch')}
    matmul = median_of(res['fast'], 'matmul_gflops')
    rows = [
      (f'train {size} px, batch {b}', ('train', str(b), 'images_per_sec')) for b in batches
    ]
    rows.append(
      (f'encode {size} px, batch {_ENCODE_BATCH.value}', ('encode_images_per_sec',))
    )
    for name, keys in rows:
      off, on, pt = (median_of(res[v], *keys) for v in ('xla', 'fast', 'pytorch'))
      gflops = temp = pct = None
      if keys[0] == 'train':
        gflops = median_of(res['fast'], 'train', keys[1], 'gflops')
        temp = median_of(res['fast'], 'train', keys[1], 'temp_mib')
        pct = None if gflops is None or not matmul else 100 * gflops / matmul
      ratio = lambda a, b: None if a is None or b is None else a / b
      lines.append(
        f'| {LABELS[setting]} | {name} | {fmt(off)} | {fmt(on)} | '
        f'{fmt(ratio(on, off), ".2f", "x")} | {fmt(pt)} | '
        f'{fmt(ratio(on, pt), ".2f", "x")} | {fmt(gflops, ".0f")} | {fmt(pct, ".0f", "%")} | '
        f'{fmt(temp, ".0f", " MiB")} |'
      )
  all_fast = [r for s in _SETTINGS.value for r in results.get((s, 'fast'), [])]
  matmul = median_of(all_fast, 'matmul_gflops')
  torch_version = next(
    (r['version'] for s in _SETTINGS.value for r in results.get((s, 'pytorch'), [])), None
  )
  return (
    '\n'.join(lines) + f'\n\nimages/s (median of {_ROUNDS.value} round(s)); '
    f'float32 matrix product through XLA: {fmt(matmul, ".0f")} GFLOP/s (median)'
    + (f'; PyTorch: {torch_version}' if torch_version else '')
    + '.'
  )


def main(argv):
  del argv
  if _WORKER.value:
    task = json.loads(_WORKER.value)
    worker = torch_worker if task['variant'] == 'pytorch' else jax_worker
    print('RESULT ' + json.dumps(worker(task)), flush=True)
    return
  unknown = set(_SETTINGS.value) - set(SETTINGS)
  if unknown:
    raise app.UsageError(f'Unknown settings {sorted(unknown)}; valid: {list(SETTINGS)}.')
  variants = list(_VARIANTS.value)
  if 'pytorch' in variants and not steps.torch_available():
    print('torch/torchvision not installed: skipping the PyTorch comparison.')
    variants.remove('pytorch')
  results = {}
  for r in range(_ROUNDS.value):
    for setting in _SETTINGS.value:
      for variant in variants:
        if variant == 'pytorch' and SETTINGS[setting][3] is None:
          continue
        task = dict(
          setting=setting,
          variant=variant,
          steps=_STEPS.value,
          encode_batch=_ENCODE_BATCH.value,
        )
        out = steps.run_worker(__file__, task)
        print(f'round {r + 1} {setting} {variant}: {json.dumps(out)}', flush=True)
        if out is not None:
          results.setdefault((setting, variant), []).append(out)
  body = table(results)
  print(body)
  report.append(
    _OUTPUT.value, 'Training and encoding speed, fast path off and on, beside PyTorch', body
  )


if __name__ == '__main__':
  app.run(main)
