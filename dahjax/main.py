"""dahjax entry point: `python -m dahjax.main --config configs/<name>.py --workdir <dir>`.

Trains and then evaluates (`--mode=train_and_eval`, the default) or only evaluates a
checkpoint of the workdir (`--mode=eval`). Config fields are overridden on the command
line: `--config.model.bits=24`. A bad flag, config or workdir stops with one
`dahjax: ...` line and a non-zero exit status, before anything is compiled.
"""

import logging as std_logging
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dahjax import checkpoints
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

# Exit status after SIGTERM, once a checkpoint is saved: 128 + SIGTERM, as a shell
# reports a terminated process, so schedulers requeue rather than count it done.
EXIT_PREEMPTED = 143


def _quiet_libraries(record) -> bool:
  """Drops INFO lines of Orbax, which logs every checkpoint step in detail."""
  return record.levelno >= std_logging.WARNING or 'orbax' not in record.pathname


def unknown_field_message(argv: list[str], error: Exception) -> str:
  """One line for a `--config.<field>` override naming no field of the config.

  ml_collections raises KeyError/AttributeError with the missing key and, when one is
  close, 'Did you mean "<name>" instead of "<key>"?'.
  """
  text = str(error.args[0] if error.args else error)
  close = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
  key = close.group(2) if close else (re.findall(r'\w+', text) or ['?'])[0]
  flag = next(
    (
      a.split('=')[0]
      for a in argv
      if a.startswith('--config.') and re.search(rf'\.{re.escape(key)}\b', a)
    ),
    f'--config...{key}',
  )
  hint = (
    f"; did you mean '{close.group(1)}'?"
    if close
    else '; configs/default.py defines every field.'
  )
  return f"{flag}: the config has no field '{key}'{hint}"


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with bad flags and unknown config fields as one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f'dahjax: {e}. Pass --helpfull to see the flags.')
  except (KeyError, AttributeError) as e:  # An override of a field that does not exist.
    sys.exit(f'dahjax: {unknown_field_message(argv, e)}')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().python_handler.addFilter(_quiet_libraries)
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
  if _MODE.value == 'eval':
    evaluate.evaluate(config, _WORKDIR.value, checkpoint_step=_CHECKPOINT_STEP.value)
    return
  try:
    train.train_and_evaluate(config, _WORKDIR.value)
  except train.Preempted as e:
    logging.warning('%s', e)
    sys.exit(EXIT_PREEMPTED)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=parse_flags)
