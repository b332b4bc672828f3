"""Model registry: `create_model(name, **kwargs)` builds a registered Flax module.

Every model maps images [B, H, W, 3] (float, in [0, 1]) to a dict with `hash`
(continuous codes [B, bits]) and `logits` [B, C], and has a method
`binary_codes(hash) -> uint8 0/1 [B, bits]` used for retrieval.
"""

from collections.abc import Callable
import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from dahjax import registry
from dahjax.models import dsh_cnn
from dahjax.models import resnet18
from dahjax.models import resnet30

_MODELS: dict[str, Callable[..., nn.Module]] = {
  # DAH (Li et al., IEEE Access 2020); attention='none' is its NoneA-DAH ablation.
  'dah_resnet30': resnet30.ResNet30,
  # DPFAH (Scientific Reports 2022); attention='none' is DFAH-1 of its Table 5.
  'dpfah_resnet18': resnet18.ResNet18,
  # DSH's small CNN for 32 px images (Liu et al., CVPR 2016), trained from scratch.
  'dsh_cnn': dsh_cnn.DSHNet,
}


DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


def model_fields(name: str) -> set[str]:
  """The attributes model `name` takes (its dataclass fields, less Flax's own)."""
  module = registry.lookup(_MODELS, name, 'model')
  return {f.name for f in dataclasses.fields(module) if f.name not in ('parent', 'name')}


def model_kwargs(config: Any) -> dict[str, Any]:
  """`config.model` as keyword arguments of model `config.model_name`.

  `config.model` holds the fields of every model (configs/default.py); each model takes
  those it declares. `pretrained`, a weights file loaded into the initial variables
  rather than an attribute, is left out, and the `dtype` name becomes a dtype.
  """
  fields = model_fields(config.model_name)
  kwargs = {k: v for k, v in config.model.to_dict().items() if k in fields}
  if 'dtype' in kwargs:
    kwargs['dtype'] = jnp.dtype(
      registry.lookup(DTYPES, kwargs['dtype'], 'model.dtype', 'dtypes')
    )
  return kwargs


def create_model(name: str, **kwargs: Any) -> nn.Module:
  """Builds model `name` with `kwargs`; raises listing the valid names."""
  model = registry.lookup(_MODELS, name, 'model')
  bits = kwargs.get('bits')
  if bits is not None and (not isinstance(bits, int) or bits < 1):
    raise ValueError(f'model.bits must be a positive integer, got {bits!r}.')
  return model(**kwargs)
