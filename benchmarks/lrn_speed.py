"""DSH's train step with its normalisation's factor as a power against exp and log1p.

  python benchmarks/lrn_speed.py
  python benchmarks/lrn_speed.py --alternations 20 --steps 3 --output ''

DSH's CNN normalises within each channel, y = x (1 + alpha m)^(-beta) with m the 3x3
mean of squares (`dsh_cnn.within_channel_lrn`). Written as a power, its gradient holds
a second power, (1 + alpha m)^(-beta - 1); written as exp(-beta log1p(alpha m)), the
gradient reuses the forward's exp (the same values up to float rounding). This builds
the project's jitted train step of DSH's CNN (batch 200, CPU fast path on, synthetic
images) once with each form in one process and times them in alternation, so that both
see the same machine load; the ratio of the paired times is what to read on a shared
machine. Appends the table to docs/benchmarks.md.
"""

import os
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import report  # pylint: disable=wrong-import-position
from benchmarks import train_speed  # pylint: disable=wrong-import-position

# --steps (train steps timed per form and alternation) and --output are train_speed's.
_ALTERNATIONS = flags.DEFINE_integer('alternations', 12, 'Alternations of the two forms.')
_BATCH = flags.DEFINE_integer('batch', 200, 'Batch size.')


def main(argv):
  del argv
  from dahjax.models import conv  # pylint: disable=g-import-not-at-top

  conv.configure_cpu_backend()
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from dahjax.models import dsh_cnn  # pylint: disable=g-import-not-at-top

  def power_lrn(x, *, alpha=5e-5, beta=0.75):
    mean_sq = nn.avg_pool(jnp.square(x), (3, 3), (1, 1), ((1, 1), (1, 1)))
    return x * (1.0 + alpha * mean_sq) ** (-beta)

  forms = {'power': power_lrn, 'exp(log1p)': dsh_cnn.within_channel_lrn}
  runs = {}
  for name, lrn in forms.items():  # The form is read when the step is traced.
    dsh_cnn.within_channel_lrn = lrn
    step, state, batch = train_speed.build_step(
      dict(setting='dsh', variant='fast'), _BATCH.value
    )
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    runs[name] = [step, state, batch]
  dsh_cnn.within_channel_lrn = forms['exp(log1p)']
  seconds = {name: [] for name in forms}
  names = list(forms)
  for r in range(_ALTERNATIONS.value):
    for name in names if r % 2 else names[::-1]:
      step, state, batch = runs[name]
      start = time.perf_counter()
      for _ in range(flags.FLAGS.steps):
        state, metrics = step(state, batch)
      jax.block_until_ready(metrics)
      seconds[name].append((time.perf_counter() - start) / flags.FLAGS.steps)
      runs[name][1] = state
  power, exp = (np.asarray(seconds[n]) for n in names)
  body = '\n'.join(
    [
      '| form of (1 + alpha m)^(-beta) | ms per train step (median) | images/s |',
      '|---|---|---|',
      *(
        f'| {n} | {1e3 * np.median(t):.1f} | {_BATCH.value / np.median(t):.1f} |'
        for n, t in zip(names, (power, exp))
      ),
      '',
      f"DSH's CNN, 12 bits, batch {_BATCH.value}, fast path on; {_ALTERNATIONS.value} rounds of "
      f'{flags.FLAGS.steps} steps per form, in alternation. Median of the paired ratios, power / '
      f'exp(log1p): {np.median(power / exp):.3f}.',
    ]
  )
  print(body)
  report.append(flags.FLAGS.output, "DSH's normalisation: a power against exp(log1p)", body)


if __name__ == '__main__':
  app.run(main)
