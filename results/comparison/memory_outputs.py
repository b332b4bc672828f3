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

import numpy as np
import orbax.checkpoint as ocp


def leaves(tree, prefix=''):
  if isinstance(tree, dict):
    for key, value in tree.items():
      yield from leaves(value, f'{prefix}/{key}')
  else:
    yield prefix, tree


def main(workdirs: list[str]) -> None:
  for workdir in workdirs:
    root = os.path.join(workdir, 'checkpoints')
    steps = (
      sorted(int(s) for s in os.listdir(root) if s.isdigit()) if os.path.isdir(root) else []
    )
    if not steps:
      sys.exit(f'{workdir} has no checkpoints/<step>: give a training workdir.')
    state = ocp.StandardCheckpointer().restore(os.path.join(root, str(steps[-1]), 'state'))
    memory = [np.asarray(a) for name, a in leaves(state) if name.endswith('loss_memory/U')]
    if not memory:
      sys.exit(f'{workdir} keeps no memory of outputs (only DPSH, DSDH and DFH do).')
    u = np.abs(memory[0])
    agreement = np.abs(np.sign(memory[0]).mean(axis=0))
    print(
      f'{workdir} step {steps[-1]}: N={u.shape[0]} k={u.shape[1]} mean |u| {u.mean():.3f}, '
      f'median {np.median(u):.3f}, beyond 0.5 {(u > 0.5).mean():.1%}; '
      f'|mean sgn u| per bit {np.array2string(agreement, precision=2)}'
    )


if __name__ == '__main__':
  if len(sys.argv) < 2:
    sys.exit(__doc__.strip().splitlines()[2].strip())
  main(sys.argv[1:])
