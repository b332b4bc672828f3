"""Checks a config and workdir before any data is read or any function compiled.

Each failure names the field, what was wrong and how to fix it. Nothing in the workdir
is written or removed here except creating the workdir itself.
"""

import os

import ml_collections

from dahjax import losses
from dahjax import models
from dahjax import parallel
from dahjax import train
from dahjax.data import checks
from dahjax.data import pipeline
from dahjax.data import protocols
from dahjax.data import sources
from dahjax.models import pretrained


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises ValueError/FileNotFoundError for a bad config or workdir; creates the workdir."""
  models.create_model(config.model_name, **models.model_kwargs(config.model))
  if config.model.get('pretrained'):
    pretrained.check(config.model_name, config.model.pretrained)
  losses.get_loss(config.loss_name)
  protocols.get_protocol(config.data.protocol)
  if config.data.source not in sources.SOURCE_NAMES:
    raise ValueError(f'Unknown data source {config.data.source!r}; valid sources: '
                     f'{", ".join(sources.SOURCE_NAMES)}.')
  if config.data.sampler not in pipeline.SAMPLERS:
    raise ValueError(f'Unknown sampler {config.data.sampler!r}; valid samplers: '
                     f'{", ".join(pipeline.SAMPLERS)}.')
  if config.data.sampler == 'class_balanced' and config.batch_size % config.model.num_classes:
    raise ValueError(
        f'batch_size={config.batch_size} is not divisible by the '
        f'{config.model.num_classes} classes, as the class-balanced sampler needs; use '
        f'a multiple of {config.model.num_classes} or --config.data.sampler=random.')
  if config.model.bits > 255:
    raise ValueError(f'model.bits={config.model.bits}: retrieval supports codes of at '
                     'most 255 bits.')
  if config.batch_size < 2:
    raise ValueError(f'batch_size={config.batch_size}: pairwise losses need at least 2.')
  parallel.check_batch_size(config.batch_size)
  transform = config.data.get('transform', 'resize')
  if transform not in pipeline.TRANSFORMS:
    raise ValueError(f'Unknown data.transform {transform!r}; valid: '
                     f'{", ".join(pipeline.TRANSFORMS)}.')
  if transform == 'imagenet_crop' and config.data.get('resize_size', 256) < (
      config.data.image_size):
    raise ValueError(f'data.resize_size={config.data.resize_size} is smaller than the '
                     f'crop, data.image_size={config.data.image_size}.')
  if config.data.sampler == 'class_balanced' and config.data.protocol in (
      'nuswide21', 'lists'):
    raise ValueError(f'The class-balanced sampler needs single-label data; protocol '
                     f'{config.data.protocol!r} can be multi-label: use '
                     '--config.data.sampler=random.')
  if config.optimizer.name not in train.OPTIMIZERS:
    raise ValueError(f'Unknown optimizer {config.optimizer.name!r}; valid optimizers: '
                     f'{", ".join(train.OPTIMIZERS)}.')
  checks.check_data(config.data)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  parent = os.path.dirname(workdir)
  if not os.path.isdir(parent):
    raise FileNotFoundError(f'The parent of the workdir, {parent!r}, does not exist; '
                            'create it or choose another --workdir.')
  os.makedirs(workdir, exist_ok=True)
