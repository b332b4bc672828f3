"""Start-up checks: every component checks its own config before any data is read or
any function compiled.

Each failure names the field, what was wrong and how to fix it. Nothing in the workdir
is written or removed here except creating the workdir itself.
"""

import os

import ml_collections

from dahjax import evaluate
from dahjax import losses
from dahjax import models
from dahjax import parallel
from dahjax import retrieval
from dahjax import state
from dahjax.data import bad_images
from dahjax.data import checks
from dahjax.data import pipeline
from dahjax.data import protocols
from dahjax.models import pretrained


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises ValueError/FileNotFoundError for a bad config or workdir; creates the workdir."""
  models.create_model(config.model_name, **models.model_kwargs(config))
  retrieval.check_bits(config.model.bits)
  if config.model.pretrained:
    pretrained.check(config.model_name, config.model.pretrained)
  if config.model.init_from:
    state.check_init_from(config.model.init_from)
  losses.get_loss(config.loss_name)
  losses.check_hash_warmup(config.loss_name, config.loss.hash_warmup_steps)
  # A run counted in epochs learns its length from the data, so there the cosine
  # schedule's length is checked when training starts.
  length = config.num_train_steps
  if length <= 0:
    length = config.optimizer.get('lr_warmup_steps', 0) + 1
  state.create_optimizer(config, length)
  losses.check_batch_size(config.batch_size)
  parallel.check_batch_size(config.batch_size)
  protocol = protocols.get_protocol(config.data.protocol)
  pipeline.check_sampler(
    config.data.sampler,
    batch_size=config.batch_size,
    num_classes=config.model.num_classes,
    multi_label=protocol.multi_label,
  )
  pipeline.check_transform(
    config.data.transform,
    image_size=config.data.image_size,
    resize_size=config.data.resize_size,
  )
  bad_images.check_policy(config.data.bad_images)
  evaluate.check_plateau(config.plateau.evaluations, config.eval_every_steps)
  checks.check_data(config.data)
  check_workdir(workdir)


def check_workdir(workdir: str) -> None:
  """Creates `workdir` when its parent exists; raises FileNotFoundError when not."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  parent = os.path.dirname(workdir)
  if not os.path.isdir(parent):
    raise FileNotFoundError(
      f'The parent of the workdir, {parent!r}, does not exist; '
      'create it or choose another --workdir.'
    )
  os.makedirs(workdir, exist_ok=True)
