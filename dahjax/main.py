"""dahjax entry point: `python -m dahjax.main --config configs/<name>.py --workdir <dir>`.

Trains and then evaluates (`--mode=train_and_eval`, the default) or only evaluates a
checkpoint of the workdir (`--mode=eval`). Config fields are overridden on the command
line: `--config.model.bits=24`. A bad flag, config or workdir stops with one
`dahjax: ...` line and a non-zero exit status, before anything is compiled.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dahjax import checkpoints
from dahjax import cli
from dahjax import evaluate
from dahjax import parallel
from dahjax import train
from dahjax import validation
from dahjax.models import conv

_WORKDIR = flags.DEFINE_string(
  'workdir',
  None,
  'Directory for checkpoints, splits, metrics and evaluation outputs.',
  required=True,
)
_MODE = flags.DEFINE_enum(
  'mode',
  'train_and_eval',
  ['train_and_eval', 'eval'],
  'Train then evaluate, or only evaluate a checkpoint.',
)
_CHECKPOINT_STEP = flags.DEFINE_integer(
  'checkpoint_step', None, 'With --mode=eval: the step to evaluate (default: the latest).'
)
_COORDINATOR = flags.DEFINE_string(
  'coordinator_address',
  None,
  'host:port of process 0, for a multi-process run '
  'outside Cloud TPU, Slurm and Open MPI (which are detected).',
)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Processes of the run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process, 0-based.')
config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().python_handler.addFilter(cli.quiet_libraries)
  config = flags.FLAGS.config
  # Before anything starts JAX: XLA reads its CPU flags once, and the distributed
  # runtime must start before any computation.
  conv.configure_cpu_backend(enable=config.model.conv_impl != 'xla')
  parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    validation.validate(config, _WORKDIR.value)
    if _MODE.value == 'eval':
      # A missing checkpoint is found before anything is read or compiled.
      checkpoints.step_to_evaluate(config, _WORKDIR.value, _CHECKPOINT_STEP.value)
  except (ValueError, FileNotFoundError) as e:
    # A bad config, missing data or checkpoint: the message says what to do.
    sys.exit(f'dahjax: {e}')
  logging.info('Config:\n%s', config)
  with train.exit_when_stopped():
    if _MODE.value == 'eval':
      evaluate.evaluate(config, _WORKDIR.value, checkpoint_step=_CHECKPOINT_STEP.value)
      return
    train.train_and_evaluate(config, _WORKDIR.value)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=cli.parse_flags)
