"""How far a trained method's outputs u are from 0, and how their signs move, per checkpoint.

  python results/comparison/outputs.py <workdir> [<workdir> ...] [--all]

For each workdir's latest checkpoint (every kept one with --all) this prints the mean and
median |u|, the share of outputs beyond 0.5, and how far each bit's signs agree (|mean sgn u|
per bit: 0 for a balanced bit, 1 for a constant one). DPSH, DSDH and DFH keep every training
image's latest output in the train state (`loss_memory/U`, [N, k]), which is read as it is;
for the other methods the network encodes the first 2,000 training images, and between
consecutive checkpoints it also prints the share of those images' bits whose sign changed.
Outputs near 0 mean a pairwise likelihood sits at its saddle; signs that keep changing late
in training mean the codes do not settle.
"""

import os
import sys

from flax import traverse_util
import jax
import numpy as np
import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from dahjax import checkpoints
from dahjax import state as state_lib
from dahjax.data import input_data
from dahjax.data import pipeline

NUM_IMAGES = 2000


def encoder(config, workdir: str):
  """A function of a checkpoint's variables: u of the first NUM_IMAGES training images,
  read once."""
  model = state_lib.create_model(config)
  data = input_data.prepare(config, workdir)
  batches = list(
    pipeline.eval_batches(
      data.pool,
      data.splits['train'][:NUM_IMAGES],
      batch_size=200,
      image_size=config.data.image_size,
      transform=config.data.transform,
      resize_size=config.data.resize_size,
    )
  )
  apply = jax.jit(lambda v, x: model.apply(v, pipeline.model_input(x), train=False)['hash'])
  return lambda variables: np.concatenate(
    [np.asarray(apply(variables, x))[:n] for x, n, _ in batches]
  )


def main(workdirs: list[str], every_step: bool) -> None:
  for workdir in workdirs:
    config_path = os.path.join(workdir, checkpoints.CONFIG_FILE)
    if not os.path.isfile(config_path):
      sys.exit(f'{workdir} has no {checkpoints.CONFIG_FILE}: give a training workdir.')
    config = checkpoints.read_config(config_path)
    try:
      latest = checkpoints.step_to_evaluate(config, workdir)
    except FileNotFoundError as e:
      sys.exit(str(e))
    steps = [latest]
    if every_step:
      steps = checkpoints.create_manager(workdir, config, read_only=True).all_steps()
    before = encode = None
    for step in sorted(steps):
      path = os.path.join(workdir, checkpoints.CHECKPOINT_DIR, str(step), 'state')
      state = ocp.StandardCheckpointer().restore(path)
      memory = traverse_util.flatten_dict(state, sep='/').get('loss_memory/U')
      if memory is not None:
        u, source, flipped = np.asarray(memory), 'memory', ''
      else:
        encode = encode or encoder(config, workdir)
        variables = {'params': state['params'], 'batch_stats': state.get('batch_stats', {})}
        u, source = encode(variables), 'encoded'
        flipped = (
          '' if before is None else f', signs changed {(np.sign(u) != before).mean():.1%}'
        )
        before = np.sign(u)
      a = np.abs(u)
      agreement = np.abs(np.sign(u).mean(axis=0))
      print(
        f'{workdir} step {step} ({source}): N={a.shape[0]} k={a.shape[1]} mean |u| '
        f'{a.mean():.3f}, median {np.median(a):.3f}, beyond 0.5 {(a > 0.5).mean():.1%}'
        f'{flipped}; |mean sgn u| per bit {np.array2string(agreement, precision=2)}'
      )


if __name__ == '__main__':
  args = [a for a in sys.argv[1:] if a != '--all']
  if not args:
    sys.exit(__doc__.strip().splitlines()[2].strip())
  main(args, '--all' in sys.argv[1:])
