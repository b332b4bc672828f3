"""How far a memory-keeping method's outputs are from 0, read from its last checkpoint.

  python results/comparison/memory_outputs.py <workdir> [<workdir> ...]

DPSH, DSDH and DFH keep every training image's latest output u in the train state
(`loss_memory/U`, [N, k]); this prints, for each workdir's latest checkpoint, the mean
and median |u| over all N images and bits, the share of outputs beyond 0.5, and how far
each bit's signs agree over the N images (|mean sgn u| per bit: 0 for a balanced bit,
1 for a constant one). Outputs near 0 mean the pairwise likelihood sits at its saddle.
"""

import os
import sys

from flax import traverse_util
import numpy as np
import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from dahjax import checkpoints


def main(workdirs: list[str]) -> None:
  for workdir in workdirs:
    config_path = os.path.join(workdir, checkpoints.CONFIG_FILE)
    if not os.path.isfile(config_path):
      sys.exit(f'{workdir} has no {checkpoints.CONFIG_FILE}: give a training workdir.')
    try:
      step = checkpoints.step_to_evaluate(checkpoints.read_config(config_path), workdir)
    except FileNotFoundError as e:
      sys.exit(str(e))
    path = os.path.join(workdir, checkpoints.CHECKPOINT_DIR, str(step), 'state')
    state = traverse_util.flatten_dict(ocp.StandardCheckpointer().restore(path), sep='/')
    if 'loss_memory/U' not in state:
      sys.exit(f'{workdir} keeps no memory of outputs (only DPSH, DSDH and DFH do).')
    memory = np.asarray(state['loss_memory/U'])
    u = np.abs(memory)
    agreement = np.abs(np.sign(memory).mean(axis=0))
    print(
      f'{workdir} step {step}: N={u.shape[0]} k={u.shape[1]} mean |u| {u.mean():.3f}, '
      f'median {np.median(u):.3f}, beyond 0.5 {(u > 0.5).mean():.1%}; '
      f'|mean sgn u| per bit {np.array2string(agreement, precision=2)}'
    )


if __name__ == '__main__':
  if len(sys.argv) < 2:
    sys.exit(__doc__.strip().splitlines()[2].strip())
  main(sys.argv[1:])
