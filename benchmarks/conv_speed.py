"""Speed and memory of single convolutions (forward + both gradients) per implementation.

  python benchmarks/conv_speed.py               # with conv.configure_cpu_backend()
  python benchmarks/conv_speed.py --nocpu_flag  # XLA's default CPU flags

For the convolution shapes of the project's models (ResNet18 at 32 and 224 px, batch
128 and 32; DAH's depthwise and 1x1 convolutions, batch 20) it times a jitted
value-and-gradient of sum(conv(x, w) * probe) and reads XLA's temporary memory, for:

  xla      lax.conv_general_dilated;
  im2col   the k*k shifted slices concatenated, then one matrix product (the input
           copied k*k times: memory grows with it);
  dahjax   `conv.conv2d` / `conv.depthwise_conv` with impl='slices' (what the models use
           on the CPU).

GFLOP/s count 3 x 2 x MACs (forward, input gradient, weight gradient). Results are
appended to docs/benchmarks.md.
"""

import os
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position

_CPU_FLAG = flags.DEFINE_bool('cpu_flag', True, 'Apply conv.configure_cpu_backend().')
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(ROOT, 'docs', 'benchmarks.md'),
  'Markdown file to append to; empty to only print.',
)

# (name, batch, size, C_in, C_out, kernel, stride, depthwise)
SHAPES = (
  ('ResNet18 32 px stem', 128, 32, 3, 64, 3, 1, False),
  ('ResNet18 layer1 3x3', 128, 32, 64, 64, 3, 1, False),
  ('ResNet18 layer2 3x3/2', 128, 32, 64, 128, 3, 2, False),
  ('ResNet18 layer2 1x1/2', 128, 32, 64, 128, 1, 2, False),
  ('ResNet18 layer3 3x3', 128, 8, 256, 256, 3, 1, False),
  ('ResNet18 224 px stem 7x7/2', 32, 224, 3, 64, 7, 2, False),
  ('DAH 1x1 (pointwise)', 20, 16, 256, 128, 1, 1, False),
  ('DAH depthwise 3x3', 20, 16, 128, 128, 3, 1, True),
  ('DAH depthwise 1x1/2', 20, 32, 256, 256, 1, 2, True),
)


def main(argv):
  del argv
  from dahjax.models import conv  # pylint: disable=g-import-not-at-top

  flag_on = conv.configure_cpu_backend(_CPU_FLAG.value)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  def im2col(x, w, stride, pad):
    k = w.shape[0]
    cols = jnp.concatenate(conv._windows(x, k, stride, pad), axis=-1)  # pylint: disable=protected-access
    return jnp.einsum('bhwk,kf->bhwf', cols, w.reshape(-1, w.shape[-1]))

  def lax_conv(x, w, stride, pad, groups):
    return jax.lax.conv_general_dilated(
      x,
      w,
      (stride, stride),
      conv.explicit_padding(pad, x.shape[1:3], w.shape[0], stride),
      feature_group_count=groups,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
    )

  lines = [
    '| convolution | shape (B, H, C_in -> C_out, k/s) | xla GFLOP/s | xla memory | '
    'im2col GFLOP/s | im2col memory | dahjax GFLOP/s | dahjax memory |',
    '|---|---|---|---|---|---|---|---|',
  ]
  for name, b, size, cin, cout, k, stride, depthwise in SHAPES:
    pad = ((k - 1) // 2, (k - 1) // 2)
    pad = (pad, pad)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(b, size, size, cin)), jnp.float32)
    w_shape = (k, k, 1, cin) if depthwise else (k, k, cin, cout)
    w = jnp.asarray(rng.normal(size=w_shape) * 0.1, jnp.float32)
    impls = {
      'xla': lambda x, w: lax_conv(x, w, stride, pad, cin if depthwise else 1),
      'im2col': None if depthwise else (lambda x, w: im2col(x, w, stride, pad)),
      'dahjax': (
        (lambda x, w: conv.depthwise_conv(x, w, stride, 'slices', pad))
        if depthwise
        else (lambda x, w: conv.conv2d(x, w, strides=stride, padding=pad, impl='slices'))
      ),
    }
    out_shape = jax.eval_shape(impls['xla'], x, w).shape
    probe = jnp.asarray(rng.normal(size=out_shape), jnp.float32)
    macs = np.prod(out_shape) * k * k * (1 if depthwise else cin)
    cells = []
    for fn in impls.values():
      if fn is None:
        cells += ['-', '-']
        continue
      grad = jax.jit(
        jax.value_and_grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) * probe), argnums=(0, 1))
      )
      compiled = grad.lower(x, w).compile()
      jax.block_until_ready(grad(x, w))
      start, calls = time.perf_counter(), 0
      while calls < 3 or time.perf_counter() - start < 0.5:
        jax.block_until_ready(grad(x, w))
        calls += 1
      seconds = (time.perf_counter() - start) / calls
      cells += [
        f'{3 * 2 * macs / seconds / 1e9:.0f}',
        f'{compiled.memory_analysis().temp_size_in_bytes / 2**20:.0f} MiB',
      ]
    kind = 'depthwise ' if depthwise else ''
    lines.append(
      f'| {name} | {b}, {size}, {cin} -> {cout if not depthwise else cin}, '
      f'{kind}{k}/{stride} | ' + ' | '.join(cells) + ' |'
    )
    print(lines[-1], flush=True)
  body = '\n'.join(lines) + (
    f'\n\nForward plus input and weight gradients, float32; XLA CPU flag '
    f'{conv.CPU_XLA_FLAG} {"on" if flag_on else "off"}. Memory: XLA temporary buffers '
    'of the jitted value-and-gradient.'
  )
  print(body)
  report.append(_OUTPUT.value, 'Single convolutions, per implementation', body)


if __name__ == '__main__':
  app.run(main)
