"""Every method on one backbone, one protocol and one budget, and the papers-style table.

  python -m dahjax.comparison --config configs/dsh_cifar10.py --root runs/comparison \
      --methods dsh,dpsh,hashnet --bits 12,48 --config.num_train_steps=2000 \
      --config.data.data_dir=<cifar10 folder> [--paper] [--output table.md]

The config (with its overrides) fixes the backbone, protocol, optimiser and budget; each
method changes only its loss and the head its loss expects (`head_settings`). Run
(method, bits) trains in `<root>/<method>_<bits>`, the workdir `python -m dahjax.main`
would use: a run whose final evaluation is there is kept, an interrupted one resumes
from its checkpoint, a missing one starts. Then `dahjax.compare`'s table of all of them
is printed (and written to --output); run the same command again after a preemption.
"""

from collections.abc import Sequence
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from dahjax import atomic
from dahjax import cli
from dahjax import compare
from dahjax import losses
from dahjax import train
from dahjax import validation

_ROOT = flags.DEFINE_string('root', None, 'Directory of the runs, one per method and bits.')
_METHODS = flags.DEFINE_list(
  'methods', losses.names(), 'Losses to compare (`dahjax.losses.names()`).'
)
_BITS = flags.DEFINE_list('bits', ['12', '48'], 'Code lengths.')
# --paper, --budget and --output are dahjax.compare's flags.
config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)

# The head each loss expects, by backbone: fields of `config.model`. '*' is every other
# loss (the raw outputs u, codes sgn(u)); None: the backbone cannot give that head.
_HEADS: dict[str, dict[str, dict | None]] = {
  'dsh_cnn': {
    '*': dict(hash_activation='none', classifier_reads='features'),
    'dah': dict(hash_activation='shrink_sigmoid', classifier_reads='codes'),
    'greedyhash': dict(hash_activation='none', classifier_reads='sign_codes'),
  },
  'dah_resnet30': {
    '*': dict(hash_layer='linear'),
    'dah': dict(hash_layer='shrink_sigmoid'),
    'greedyhash': dict(hash_layer='linear', classifier_input='sign_codes'),
  },
  'dpfah_resnet18': {
    '*': dict(hash_activation='none', classifier_reads='features'),
    'dah': dict(hash_activation='shrink_sigmoid', classifier_reads='codes'),
    'greedyhash': dict(hash_activation='none', classifier_reads='sign_codes'),
  },
}


# A backbone not listed: its own outputs for the methods that read u alone.
_OTHER_MODEL: dict[str, dict | None] = {'*': {}, 'dah': None, 'greedyhash': None}


def head_settings(model_name: str, loss_name: str) -> dict:
  """The `config.model` fields that give loss `loss_name` its head on `model_name`.

  Raises:
    ValueError: the backbone cannot give the loss the head it needs.
  """
  heads = _HEADS.get(model_name, _OTHER_MODEL)
  settings = heads.get(loss_name, heads['*'])
  if settings is None:
    able = sorted(m for m, h in _HEADS.items() if h.get(loss_name, h['*']) is not None)
    raise ValueError(
      f'{losses.TITLES[loss_name]} needs a head that model {model_name!r} does not have; '
      f'compare it on {", ".join(able)}, or leave it out of --methods.'
    )
  return settings


def run_config(
  base: ml_collections.ConfigDict, loss_name: str, bits: int
) -> ml_collections.ConfigDict:
  """`base` with loss `loss_name`, its head and `bits`."""
  config = ml_collections.ConfigDict(base.to_dict())
  losses.get_loss(loss_name)  # An unknown name lists the valid ones.
  config.loss_name = loss_name
  config.model.bits = bits
  config.model.update(head_settings(config.model_name, loss_name))
  config.lock()
  return config


def _finished(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """Whether `workdir` holds the final evaluation of a fixed-length run."""
  path = os.path.join(workdir, compare.METRICS_FILE)
  if config.num_train_steps <= 0 or not os.path.exists(path):
    return False
  with open(path) as f:
    return json.load(f).get('step') == config.num_train_steps


def run_all(
  base: ml_collections.ConfigDict, root: str, methods: Sequence[str], bits: Sequence[int]
) -> list[str]:
  """Trains and evaluates every (method, bits) not finished yet; returns the workdirs.

  Every run's config is checked before the first trains, so a bad one stops the
  comparison before hours are spent on the others.
  """
  os.makedirs(root, exist_ok=True)
  runs = []
  for name in methods:
    for b in bits:
      config = run_config(base, name, b)
      workdir = os.path.join(root, f'{name}_{b}')
      validation.validate(config, workdir)
      runs.append((config, workdir))
  for config, workdir in runs:
    if _finished(workdir, config):
      logging.info('%s is finished; kept.', workdir)
      continue
    logging.info('Training %s.', workdir)
    train.train_and_evaluate(config, workdir)
  return [w for _, w in runs]


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().python_handler.addFilter(cli.quiet_libraries)
  if not _ROOT.value:
    sys.exit('dahjax: pass --root, the directory of the runs.')
  try:
    bits = [int(b) for b in _BITS.value]
    with train.exit_when_stopped():  # SIGTERM: the run in progress resumes next time.
      workdirs = run_all(flags.FLAGS.config, _ROOT.value, _METHODS.value, bits)
    table = compare.tables(
      compare.load_results(workdirs), flags.FLAGS.paper, flags.FLAGS.budget
    )
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f'dahjax: {e}')
  print(table, end='')
  if flags.FLAGS.output:
    atomic.write_text(flags.FLAGS.output, table)


if __name__ == '__main__':
  app.run(main)
