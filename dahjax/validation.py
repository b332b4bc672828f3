"""Checks a config and workdir before any data is read or any function compiled.

Each failure names the field, what was wrong and how to fix it. Nothing in the workdir
is written or removed here except creating the workdir itself.
"""

import os

import ml_collections

from dahjax import losses
from dahjax import models
from dahjax import parallel
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
  if config.data.source == 'image_folder' and not os.path.isdir(
      os.path.expanduser(config.data.data_dir)):
    raise FileNotFoundError(
        f'data.data_dir {config.data.data_dir!r} does not exist. Expected an image '
        f'folder: {sources.IMAGE_FOLDER_LAYOUT}.')
  workdir = os.path.abspath(os.path.expanduser(workdir))
  parent = os.path.dirname(workdir)
  if not os.path.isdir(parent):
    raise FileNotFoundError(f'The parent of the workdir, {parent!r}, does not exist; '
                            'create it or choose another --workdir.')
  os.makedirs(workdir, exist_ok=True)
