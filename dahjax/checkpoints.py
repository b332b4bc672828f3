"""Orbax checkpointing of the train state, with the run's config saved beside it.

Orbax writes each checkpoint to a temporary directory and renames it when complete, so
an interrupted save never replaces a good checkpoint.
"""

import os

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp

CHECKPOINT_DIR = 'checkpoints'


def create_manager(workdir: str, config: ml_collections.ConfigDict,
                   read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.max_checkpoints_to_keep, create=not read_only,
      enable_async_checkpointing=not read_only, read_only=read_only)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR),
                               options=options)


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))


def restore(manager: ocp.CheckpointManager, step: int, state, workdir: str):
  """Restores `step` onto the structure (and shardings) of `state`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  try:
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
  except Exception as e:  # Orbax raises many types for unreadable data.
    path = os.path.join(workdir, CHECKPOINT_DIR, str(step))
    raise RuntimeError(
        f'Checkpoint {path} cannot be restored into this model ({type(e).__name__}: '
        f'{e}). It is corrupt or was written by a different config; remove it to '
        'fall back to an earlier step, or use another workdir.') from e
  return restored['state']


def restore_latest(manager: ocp.CheckpointManager, state, workdir: str):
  """The latest checkpoint restored onto `state`, or `state` itself when there is none."""
  step = manager.latest_step()
  if step is None:
    return state
  logging.info('Resuming from checkpoint step %d in %s.', step, workdir)
  return restore(manager, step, state, workdir)
