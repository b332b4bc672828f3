"""Which optimiser lets every method train on DSH's CNN: 150 steps of each loss.

  python results/comparison/optimizer_probe.py <cifar10 folder> [method ...]

For each method, on DSH's CNN at 12 bits with the head the comparison gives it
(`dahjax.comparison.head_settings`), 150 steps of batch 200 drawn from 2,000 training
images (the first 200 of each class, seeded), with three optimisers: DSH's SGD
(momentum 0.9, learning rate 1e-3), the same at 1e-4, and Adam at 1e-4. Printed at
steps 0, 60 and 149: the loss, the mean |u| of the hash layer's outputs (for DAH's
head, its shrink-sigmoid output), how far the batch agrees on each bit's sign (mean
over bits of |mean sgn u|: 1 when every image has the same code) and the gradient's
global norm. The CNN reads pixels on DSH's [0, 255] scale, so its raw outputs start at
|u| ~ 7: losses that saturate (tanh, sigmoid) or grow fast (cubic, exponential) there
diverge or freeze under SGD at DSH's rate.
"""

import inspect
import os
import sys

import jax
import numpy as np
import optax

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from dahjax import comparison
from dahjax import losses
from dahjax.data import sources
from dahjax.models import dsh_cnn

OPTIMIZERS = {
  'sgd 1e-3': optax.sgd(1e-3, momentum=0.9),
  'sgd 1e-4': optax.sgd(1e-4, momentum=0.9),
  'adam 1e-4': optax.adam(1e-4),
}
STEPS = 150
BATCH = 200


def load(data_dir: str, per_class: int = 200) -> tuple[np.ndarray, np.ndarray]:
  """The first `per_class` training images of each class (file order), on [0, 1]."""
  source = sources.ImageFolderSource(data_dir, 'train')
  rows = [i for c in source.labels.T for i in np.flatnonzero(c)[:per_class]]
  images = np.stack([source.load_image(i) for i in rows]).astype(np.float32) / 255
  return images, source.labels[rows].astype(np.int32)


def probe(name: str, tx: optax.GradientTransformation, x: np.ndarray, y: np.ndarray):
  net = dsh_cnn.DSHNet(bits=12, **comparison.head_settings('dsh_cnn', name))
  params = net.init(jax.random.key(0), x[:1])['params']
  loss_fn = losses.get_loss(name)
  takes = inspect.signature(loss_fn).parameters
  memory = losses.init_memory(name, num_train=len(x), bits=12, num_classes=10)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, memory, xb, yb, idx, t):
    kwargs = {}
    if 'step' in takes:
      kwargs['step'] = t
    if 'memory' in takes:
      kwargs.update(memory=memory, indices=idx)

    def f(p):
      out = net.apply({'params': p}, xb)
      loss, aux = loss_fn(outputs=out, labels=yb, **kwargs)
      return loss, (out['hash'], aux.pop('memory', memory))

    (loss, (u, memory)), grads = jax.value_and_grad(f, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, memory, loss, u, optax.global_norm(grads)

  rng = np.random.default_rng(0)
  rows = []
  for t in range(STEPS):
    idx = rng.choice(len(x), BATCH, replace=False)
    params, opt_state, memory, loss, u, gnorm = step(
      params, opt_state, memory, x[idx], y[idx], idx, t
    )
    if t in (0, 60, STEPS - 1):
      u = np.asarray(u)
      agree = np.abs(np.sign(u).mean(0)).mean()
      rows.append(
        f'{float(loss):.4g} / {np.abs(u).mean():.3g} / {agree:.2f} / {float(gnorm):.3g}'
      )
  return rows


def main():
  x, y = load(sys.argv[1])
  methods = sys.argv[2:] or losses.names()
  print('loss / mean |u| / sign agreement / gradient norm, at steps 0, 60 and 149\n')
  print('| method | optimiser | step 0 | step 60 | step 149 |')
  print('|---|---|---|---|---|')
  for name in methods:
    for label, tx in OPTIMIZERS.items():
      print(
        f'| {losses.TITLES[name]} | {label} | ' + ' | '.join(probe(name, tx, x, y)) + ' |'
      )


if __name__ == '__main__':
  main()
