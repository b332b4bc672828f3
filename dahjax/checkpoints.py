"""Orbax checkpointing of the train state, and the guard that keeps one run per workdir.

Orbax writes each checkpoint to a temporary directory and renames it when complete, so
a run killed while saving never leaves a checkpoint that looks finished: the manager
ignores the unfinished one. A finished checkpoint that still cannot be read (a damaged
disk, a partial copy) is skipped with a warning and the previous one restored, so a
restart always resumes from the last readable state.

Each workdir records the settings that define its run (`run_config.json`: model, code
length, loss, protocol, data source); a later start with other such settings is refused
instead of silently mixing two runs' checkpoints and metrics. `config.json` beside it
holds the whole resolved config of the latest start, so a run describes itself once its
command line is gone.
"""

import json
import math
import os
from typing import Any

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp

from dahjax import atomic
from dahjax import models

CHECKPOINT_DIR = 'checkpoints'
RUN_CONFIG_FILE = 'run_config.json'
CONFIG_FILE = 'config.json'

# Config fields that define a run; others (epochs, logging, evaluation, conv_impl,
# dtype, data paths) may change between the starts of one run.
# A model field the model does not take is recorded as None; a field missing from an
# older workdir's record is not compared.
_RUN_FIELDS = (
  'model_name',
  'model.bits',
  'model.num_classes',
  'model.attention',
  'model.stem',
  'model.hash_layer',
  'model.classifier_input',
  'model.hash_norm',
  'model.hash_activation',
  'model.classifier_reads',
  'loss_name',
  'data.protocol',
  'data.source',
  'data.image_size',
  'data.split_seed',
  'seed',
  'batch_size',
)


def create_manager(
  workdir: str, config: ml_collections.ConfigDict, read_only: bool = False
) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
    max_to_keep=config.max_checkpoints_to_keep,
    create=not read_only,
    enable_async_checkpointing=not read_only,
    read_only=read_only,
  )
  return ocp.CheckpointManager(
    os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR), options=options
  )


def step_to_evaluate(
  config: ml_collections.ConfigDict, workdir: str, step: int | None = None
) -> int:
  """`step`, or the workdir's latest checkpoint step when None.

  Raises:
    FileNotFoundError: the workdir has no checkpoint (the message gives the training
      command), or none of step `step` (it lists the steps there are).
  """
  manager = create_manager(workdir, config, read_only=True)
  steps = sorted(manager.all_steps())
  if not steps:
    raise FileNotFoundError(
      f'No checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}. Train one first: '
      f'python -m dahjax.main --config <config> --workdir {workdir}'
    )
  if step is None:
    return steps[-1]
  if step not in steps:
    raise FileNotFoundError(
      f'No checkpoint for step {step} in {workdir}; available: {steps}.'
    )
  return step


def save(
  manager: ocp.CheckpointManager,
  step: int,
  state,
  data_position: dict[str, Any] | None = None,
) -> None:
  """Saves `state` (and, as JSON, where the input pipeline stands) as step `step`."""
  items = {'state': ocp.args.StandardSave(state)}
  if data_position is not None:
    items['data'] = ocp.args.JsonSave(data_position)
  manager.save(step, args=ocp.args.Composite(**items))


def read_data_position(
  config: ml_collections.ConfigDict, workdir: str, step: int
) -> dict[str, Any] | None:
  """What `save` recorded beside checkpoint `step` of `workdir` (where the input
  pipeline stood, the training time so far), or None when there is no such record."""
  manager = create_manager(workdir, config, read_only=True)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore()))
  except Exception:  # pylint: disable=broad-except
    return None  # No checkpoint of that step, or one saved without the record.
  finally:
    manager.close()
  return restored['data']


def restore(manager: ocp.CheckpointManager, step: int, state, workdir: str):
  """Restores `step` onto the structure (and shardings) of `state`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  try:
    restored = manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    )
  except Exception as e:  # Orbax raises many types for unreadable data.
    path = os.path.join(workdir, CHECKPOINT_DIR, str(step))
    raise RuntimeError(
      f'Checkpoint {path} cannot be restored into this model ({type(e).__name__}: '
      f'{e}). It is corrupt or was written by a different config; remove it to '
      'fall back to an earlier step, or use another workdir.'
    ) from e
  return restored['state']


def restore_partial(manager: ocp.CheckpointManager, step: int, target, workdir: str):
  """Restores only the leaves of `target` (a dict of abstract arrays, a subtree of the
  saved state such as its params) from checkpoint `step`, on this process's devices."""
  restore_args = ocp.checkpoint_utils.construct_restore_args(target)
  try:
    restored = manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
          target, restore_args=restore_args, partial_restore=True
        )
      ),
    )
  except Exception as e:  # Orbax raises many types for unreadable data.
    path = os.path.join(workdir, CHECKPOINT_DIR, str(step))
    raise RuntimeError(
      f'Checkpoint {path} cannot be restored into this model ({type(e).__name__}: '
      f'{e}). It is corrupt or was written by a different config.'
    ) from e
  return restored['state']


def restore_latest(manager: ocp.CheckpointManager, state, workdir: str):
  """The latest readable checkpoint restored onto `state`; `state` when there is none.

  A checkpoint that cannot be read is skipped with a warning and the one before it
  tried; when none can be read, the error of the latest is raised.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  first_error = None
  for step in steps:
    try:
      restored = restore(manager, step, state, workdir)
    except RuntimeError as e:
      first_error = first_error or e
      logging.warning('Skipping unreadable checkpoint step %d: %s', step, e)
      continue
    if step != steps[0]:
      logging.warning(
        'Resuming from step %d, the latest readable checkpoint (the later '
        'ones in %s cannot be read).',
        step,
        os.path.join(workdir, CHECKPOINT_DIR),
      )
    else:
      logging.info('Resuming from checkpoint step %d in %s.', step, workdir)
    return restored
  if first_error is not None:
    raise first_error
  return state


def run_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config fields that define a run (see `_RUN_FIELDS`)."""
  taken = models.model_kwargs(config)
  out = {}
  for field in _RUN_FIELDS:
    group, _, name = field.rpartition('.')
    if group == 'model':
      out[field] = taken.get(name)
    else:
      out[field] = (config[group] if group else config)[name]
  return out


def write_full_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes every field of `config`, references resolved, to `workdir`/config.json."""

  def strict(x):  # JSON has no NaN or infinity: such a setting is written as a string.
    if isinstance(x, dict):
      return {k: strict(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
      return str(x)
    return x

  atomic.write_json(os.path.join(workdir, CONFIG_FILE), strict(config.to_dict()), indent=2)


def read_config(path: str) -> ml_collections.ConfigDict:
  """A config written by `write_full_config` (a workdir's or an index's config.json)."""
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def check_run_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Records the run's settings in a new workdir; refuses a workdir of another run.
  Every start also writes the whole config to `config.json` (`write_full_config`).

  Raises:
    ValueError: naming every differing field, when `workdir` holds a run with other
      settings.
  """
  path = os.path.join(workdir, RUN_CONFIG_FILE)
  settings = run_settings(config)
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    diff = {k: (saved[k], v) for k, v in settings.items() if k in saved and saved[k] != v}
    if diff:
      lines = '; '.join(
        f'{k}: workdir has {a!r}, config has {b!r}' for k, (a, b) in diff.items()
      )
      raise ValueError(
        f'{workdir} holds a run with other settings ({lines}). Use another --workdir '
        'for this config, or the settings of that run to resume or evaluate it.'
      )
  elif jax.process_index() == 0:
    atomic.write_json(path, settings, indent=2)
  if jax.process_index() == 0:
    write_full_config(config, workdir)
