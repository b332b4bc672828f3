"""Training and encoding speed on whatever accelerator JAX finds (or the CPU), with
whether the input pipeline keeps the device busy.

  python benchmarks/accelerator.py                          # every setting
  python benchmarks/accelerator.py --settings dah32 --steps 5 --max_batch 40

Settings, each at its paper's batch size and at the largest batch that fits (doubling
from the paper's until the device runs out of memory or --max_batch):

  dah32           DAH ResNet30+CBAM, 48 bits, 32 px (configs/dah_cifar10.py), batch 20;
  dpfah224        DPFAH ResNet18+PFA, 48 bits, 224 px (configs/dpfah_cifar10.py), batch
                  128, float32;
  dpfah224_bf16   the same in bfloat16 (float32 parameters and losses).

For each: training images/s of the jitted train step on synthetic images (compilation
excluded), encoding images/s, and the input pipeline's part: the same step fed by the
real pipeline (grain, PIL decoding, the setting's transform) from the CIFAR-10 subset
shipped with dahjax, for --pipeline_steps steps; the device's idle fraction is
1 - (steps x step time) / (time of the fed loop). With torch installed, torchvision's
ResNet18 at 224 px (Adam, batch 128) trains on the same device (CUDA when available)
for comparison. The table is appended to docs/benchmarks.md with the command, machine
and date.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position
from benchmarks import steps as steps_lib  # pylint: disable=wrong-import-position

# name -> (config module, model dtype)
SETTINGS = {
  'dah32': ('dah_cifar10', 'float32'),
  'dpfah224': ('dpfah_cifar10', 'float32'),
  'dpfah224_bf16': ('dpfah_cifar10', 'bfloat16'),
}
LABELS = {
  'dah32': 'DAH ResNet30+CBAM, 32 px, float32',
  'dpfah224': 'DPFAH ResNet18+PFA, 224 px, float32',
  'dpfah224_bf16': 'DPFAH ResNet18+PFA, 224 px, bfloat16',
}

_SETTINGS = flags.DEFINE_list('settings', list(SETTINGS), 'Settings to measure.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed train steps per measurement.')
_PIPELINE_STEPS = flags.DEFINE_integer('pipeline_steps', 10, 'Steps fed by the pipeline.')
_MAX_BATCH = flags.DEFINE_integer(
  'max_batch', 0, 'Largest batch tried (0: 8192 on accelerators, 2x the paper on CPU).'
)
_THREADS = flags.DEFINE_integer(
  'num_threads', 16, 'Input pipeline threads (of each worker process with --num_workers).'
)
_WORKERS = flags.DEFINE_integer(
  'num_workers', 0, 'Input worker processes (config.data.num_workers; 0: threads only).'
)
_TORCH = flags.DEFINE_boolean('torch', True, 'Also time torchvision when installed.')
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(ROOT, 'docs', 'benchmarks.md'),
  'Markdown file to append to; empty to only print.',
)
_WORKER = flags.DEFINE_string('worker', None, 'Internal: JSON task of one worker process.')


def out_of_memory(error: Exception) -> bool:
  text = str(error)
  return 'RESOURCE_EXHAUSTED' in text or 'Out of memory' in text or 'out of memory' in text


def config_of(setting: str, batch_size: int | None = None, task: dict | None = None):
  import importlib  # pylint: disable=g-import-not-at-top

  module, dtype = SETTINGS[setting]
  config = importlib.import_module(f'configs.{module}').get_config()
  config.unlock()
  config.model.dtype = dtype
  if batch_size:
    config.batch_size = batch_size
  config.data.num_threads = (task or {}).get('num_threads', _THREADS.value)
  config.data.num_workers = (task or {}).get('num_workers', 0)
  return config


def seconds_per_step(step, state, batch, n):
  """(seconds per step after one warm-up step, the final state)."""
  import jax  # pylint: disable=g-import-not-at-top

  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(n):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return (time.perf_counter() - start) / n, state


def fed_loop_seconds(config, step, state, n):
  """(seconds of `n` train steps fed by the real input pipeline after one warm-up, the
  final state: the step donates the state it is given)."""
  import jax  # pylint: disable=g-import-not-at-top

  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from dahjax import parallel  # pylint: disable=g-import-not-at-top
  from dahjax.data import input_data  # pylint: disable=g-import-not-at-top
  from dahjax.data import pipeline  # pylint: disable=g-import-not-at-top

  config.data.data_dir = quickstart.QUICKSTART_DATA
  config.data.protocol = quickstart.get_config().data.protocol
  config.data.sampler = 'random'
  data = input_data.prepare(config, None)
  sampler = pipeline.make_sampler(
    'random',
    labels=data.pool.labels,
    indices=data.splits['train'],
    batch_size=config.batch_size,
    seed=0,
  )
  batches = pipeline.train_dataset(
    data.pool,
    sampler,
    image_size=config.data.image_size,
    random_flip=True,
    seed=0,
    start_step=0,
    num_steps=n + 1,
    num_threads=config.data.num_threads,
    num_workers=config.data.num_workers,
    transform=config.data.transform,
    resize_size=config.data.resize_size,
  )
  # As training feeds it: each batch sent to the devices while the step before runs.
  batches = parallel.prefetch_to_mesh(batches, parallel.create_mesh())
  state, metrics = step(state, next(batches))
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for batch in batches:
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return time.perf_counter() - start, state


def jax_worker(task: dict) -> dict:
  from dahjax.models import conv  # pylint: disable=g-import-not-at-top

  conv.configure_cpu_backend()
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from dahjax import encode  # pylint: disable=g-import-not-at-top
  from dahjax import parallel  # pylint: disable=g-import-not-at-top
  from dahjax import state as state_lib  # pylint: disable=g-import-not-at-top

  paper_batch = config_of(task['setting'], task=task).batch_size
  platform = jax.devices()[0].platform
  limit = task['max_batch'] or (8192 if platform != 'cpu' else 2 * paper_batch)
  result = {'device': f'{jax.device_count()} x {jax.devices()[0].device_kind}', 'train': {}}
  batch_size, state = paper_batch, None
  while batch_size <= limit:
    config = config_of(task['setting'], batch_size, task)
    try:
      step, state, batch = steps_lib.train_step_setup(config, batch_size)
      seconds, state = seconds_per_step(step, state, batch, task['steps'])
    except Exception as e:  # pylint: disable=broad-except
      if not out_of_memory(e):
        raise
      result['out_of_memory_at'] = batch_size
      break
    row = {'images_per_sec': batch_size / seconds}
    if batch_size == paper_batch:
      fed, state = fed_loop_seconds(config, step, state, task['pipeline_steps'])
      row['fed_images_per_sec'] = batch_size * task['pipeline_steps'] / fed
      row['idle_fraction'] = max(0.0, 1 - task['pipeline_steps'] * seconds / fed)
    result['train'][str(batch_size)] = row
    batch_size *= 2
  config = config_of(task['setting'], paper_batch, task)
  model = state_lib.create_model(config)
  mesh = parallel.create_mesh()
  variables = jax.device_put(
    {'params': state.params, 'batch_stats': state.batch_stats}, parallel.replicated(mesh)
  )
  encoder = encode.make_encoder(model, mesh, encode.encode_chunk_size(0))
  n = 512 if platform != 'cpu' else 128
  size = config.data.image_size
  images = np.random.default_rng(1).random((n, size, size, 3), dtype=np.float32)
  jax.block_until_ready(encoder(variables, images))
  start = time.perf_counter()
  jax.block_until_ready(encoder(variables, images))
  result['encode_images_per_sec'] = n / (time.perf_counter() - start)
  return result


def torch_worker(task: dict) -> dict:
  """torchvision's ResNet18 at 224 px, Adam, batch 128, float32, on CUDA if available."""
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top

  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  model = torchvision.models.resnet18(num_classes=10).to(device)
  opt = torch.optim.Adam(model.parameters(), 1e-3)
  b = 128
  x = torch.rand(b, 3, 224, 224, device=device)
  y = torch.arange(b, device=device) % 10

  def one_step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

  one_step()
  if device == 'cuda':
    torch.cuda.synchronize()
  start = time.perf_counter()
  for _ in range(task['steps']):
    one_step()
  if device == 'cuda':
    torch.cuda.synchronize()
  seconds = (time.perf_counter() - start) / task['steps']
  return {'device': device, 'images_per_sec': b / seconds, 'version': torch.__version__}


def fmt(v, spec='.1f'):
  return '-' if v is None else format(v, spec)


def table(results: dict, torch_result: dict | None) -> str:
  lines = [
    '| setting | device | batch | train images/s | fed by the pipeline, images/s '
    '| device idle | encode images/s |',
    '|---|---|---|---|---|---|---|',
  ]
  for setting, r in results.items():
    if r is None:
      lines.append(f'| {LABELS[setting]} | failed | | | | | |')
      continue
    for i, (b, row) in enumerate(r['train'].items()):
      idle = row.get('idle_fraction')
      lines.append(
        f'| {LABELS[setting]} | {r["device"]} | {b} | {fmt(row["images_per_sec"])} '
        f'| {fmt(row.get("fed_images_per_sec"))} '
        f'| {"-" if idle is None else f"{100 * idle:.0f}%"} '
        f'| {fmt(r["encode_images_per_sec"]) if i == 0 else ""} |'
      )
    if 'out_of_memory_at' in r:
      lines.append(
        f'| {LABELS[setting]} | | {r["out_of_memory_at"]} | out of memory | | | |'
      )
  if torch_result:
    lines.append(
      f'| torchvision ResNet18 {torch_result["version"]}, 224 px, float32 '
      f'| {torch_result["device"]} | 128 | {fmt(torch_result["images_per_sec"])} | | | |'
    )
  return '\n'.join(lines)


def main(argv):
  del argv
  if _WORKER.value:
    task = json.loads(_WORKER.value)
    result = torch_worker(task) if task['setting'] == 'torch' else jax_worker(task)
    print('RESULT ' + json.dumps(result))
    return
  common = dict(
    steps=_STEPS.value,
    pipeline_steps=_PIPELINE_STEPS.value,
    max_batch=_MAX_BATCH.value,
    num_threads=_THREADS.value,
    num_workers=_WORKERS.value,
  )
  results = {}
  for setting in _SETTINGS.value:
    if setting not in SETTINGS:
      raise app.UsageError(f'Unknown setting {setting!r}; valid: {", ".join(SETTINGS)}.')
    results[setting] = steps_lib.run_worker(__file__, dict(common, setting=setting))
    print(setting, json.dumps(results[setting]))
  torch_result = None
  if _TORCH.value and steps_lib.torch_available():
    torch_result = steps_lib.run_worker(__file__, dict(common, setting='torch'))
  body = table(results, torch_result)
  body += (
    f'\n\n{_STEPS.value} timed steps per batch size on synthetic images; the fed loop runs '
    f'{_PIPELINE_STEPS.value} steps with {_THREADS.value} pipeline threads and '
    f'{_WORKERS.value} worker processes on the shipped '
    "CIFAR-10 subset (decoded and transformed to the setting's size); device idle = "
    '1 - steps x step time / fed loop time.'
  )
  print(body)
  report.append(_OUTPUT.value, 'Accelerator benchmark', body)


if __name__ == '__main__':
  app.run(main)
