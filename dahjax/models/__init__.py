"""Model registry: `create_model(name, **kwargs)` builds a registered Flax module.

Every model maps images [B, H, W, 3] (float, in [0, 1]) to a dict with `hash`
(continuous codes [B, bits]) and `logits` [B, C], and has a static
`binary_codes(hash) -> uint8 0/1 [B, bits]` used for retrieval.
"""

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from dahjax.models import resnet18
from dahjax.models import resnet30

_MODELS: dict[str, Callable[..., nn.Module]] = {
    # DAH (SPEC 2); attention='none' is the NoneA-DAH ablation.
    'dah_resnet30': resnet30.ResNet30,
    # DPFAH (SPEC 3); attention='none' is the ablation without PFA.
    'dpfah_resnet18': resnet18.ResNet18,
}


def model_names() -> list[str]:
  return sorted(_MODELS)


DTYPES = ('float32', 'bfloat16', 'float16')


def model_kwargs(model_config: Any) -> dict[str, Any]:
  """`config.model` as `create_model` keyword arguments.

  Leaves out `pretrained`, a weights file that training loads into the initial
  variables (`pretrained.load_pretrained`) rather than a module attribute, and turns the
  `dtype` name into a dtype.
  """
  kwargs = {k: v for k, v in model_config.to_dict().items() if k != 'pretrained'}
  if 'dtype' in kwargs:
    if kwargs['dtype'] not in DTYPES:
      raise ValueError(f'Unknown model.dtype {kwargs["dtype"]!r}; valid: '
                       f'{", ".join(DTYPES)}.')
    kwargs['dtype'] = jnp.dtype(kwargs['dtype'])
  return kwargs


def create_model(name: str, **kwargs: Any) -> nn.Module:
  """Builds model `name` with `kwargs`; raises listing the valid names."""
  if name not in _MODELS:
    raise ValueError(f'Unknown model {name!r}; valid models: {", ".join(model_names())}.')
  bits = kwargs.get('bits')
  if bits is not None and (not isinstance(bits, int) or bits < 1):
    raise ValueError(f'model.bits must be a positive integer, got {bits!r}.')
  return _MODELS[name](**kwargs)
