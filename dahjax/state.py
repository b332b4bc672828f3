"""The train state: model and optimiser construction, the initial state, and the
parameters of a checkpoint restored for evaluation (no optimiser built)."""

from collections.abc import Callable
import dataclasses
import functools
import os
from typing import Any

from absl import logging
import flax
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import optax

from dahjax import checkpoints
from dahjax import losses
from dahjax import models
from dahjax import registry
from dahjax.models import pretrained


class TrainState(train_state.TrainState):
  batch_stats: Any
  # State a loss keeps across steps (`losses.init_memory`); {} for most losses.
  loss_memory: Any = flax.struct.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EvalState:
  """What evaluation needs of a state: the variables and the step they belong to."""

  params: Any
  batch_stats: Any
  step: Any


LR_SCHEDULES = ('constant', 'step', 'multistep', 'cosine')


def learning_rate(
  opt: ml_collections.ConfigDict, total_steps: int | None = None
) -> float | optax.Schedule:
  """`opt.learning_rate` under `opt.lr_schedule`:

  - 'constant';
  - 'step': multiplied by `lr_decay_factor` every `lr_decay_every_steps` steps (Caffe's
    "step" policy, DSH Sec. 3.3: x0.6 every 20,000 iterations);
  - 'multistep': multiplied by `lr_decay_factor` at each step of `lr_decay_at_steps`
    (Caffe's "multistep" policy, DSH's released CIFAR-10 solver: x0.1 at 60,000 and
    65,000 iterations);
  - 'cosine': from `learning_rate` down to `lr_end_factor` times it at `total_steps`
    (the run's last step) along half a cosine.

  With `lr_warmup_steps` > 0 the rate first rises linearly from 0 over that many steps,
  and the schedule counts its steps from the end of the warm-up.

  Raises:
    ValueError: a schedule's settings that cannot make a rate, or 'cosine' without
      `total_steps` (the run's length) or no longer than its warm-up.
  """
  schedule = opt.get('lr_schedule', 'constant')
  registry.lookup(dict.fromkeys(LR_SCHEDULES), schedule, 'optimizer.lr_schedule')
  warmup = opt.get('lr_warmup_steps', 0)
  if warmup < 0:
    raise ValueError(
      f'optimizer.lr_warmup_steps={warmup}: use 0 (no warm-up) or a positive number '
      'of steps.'
    )
  if schedule == 'constant':
    if not warmup:
      return opt.learning_rate
    rate = optax.constant_schedule(opt.learning_rate)
  elif schedule == 'step':
    if opt.lr_decay_every_steps < 1:
      raise ValueError(
        f'optimizer.lr_decay_every_steps={opt.lr_decay_every_steps}: the step schedule '
        'needs a positive number of steps between decays.'
      )
    rate = optax.exponential_decay(
      opt.learning_rate, opt.lr_decay_every_steps, opt.lr_decay_factor, staircase=True
    )
  elif schedule == 'multistep':
    at = tuple(opt.get('lr_decay_at_steps', ()))
    if not at or any(s < 1 for s in at) or list(at) != sorted(set(at)):
      raise ValueError(
        f'optimizer.lr_decay_at_steps={at}: the multistep schedule needs the steps at '
        'which to decay, positive and increasing, e.g. (60000, 65000).'
      )
    rate = optax.piecewise_constant_schedule(
      opt.learning_rate, {s: opt.lr_decay_factor for s in at}
    )
  else:
    if total_steps is None:
      raise ValueError("optimizer.lr_schedule='cosine' needs the run's number of steps.")
    if total_steps <= warmup:
      raise ValueError(
        f'optimizer.lr_schedule=cosine decays over the steps after the warm-up, but the '
        f'run has {total_steps} steps and optimizer.lr_warmup_steps={warmup}; shorten the '
        'warm-up or train longer.'
      )
    end = opt.get('lr_end_factor', 0.0)
    if end < 0:
      raise ValueError(f'optimizer.lr_end_factor={end}: the last rate cannot be negative.')
    rate = optax.cosine_decay_schedule(opt.learning_rate, total_steps - warmup, alpha=end)
  if not warmup:
    return rate
  return optax.join_schedules(
    [optax.linear_schedule(0.0, opt.learning_rate, warmup), rate], [warmup]
  )


def _is_bias(params) -> Any:
  """A mask of `params`: True for every leaf named 'bias'."""
  return jax.tree_util.tree_map_with_path(
    lambda path, _: getattr(path[-1], 'key', None) == 'bias', params
  )


def _adam(opt: ml_collections.ConfigDict, rate) -> optax.GradientTransformation:
  # DAH Sec. 4.1: Adam, learning rate 1e-3, b1 0.9, b2 0.999.
  if opt.weight_decay:
    return optax.adamw(rate, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
  return optax.adam(rate, b1=opt.b1, b2=opt.b2)


def _rmsprop(opt: ml_collections.ConfigDict, rate) -> optax.GradientTransformation:
  # DPFAH Sec. 4.2 (RMSProp, weight decay 1e-5) as PyTorch's `torch.optim.RMSprop`
  # computes it: squared-gradient averages with `decay` (PyTorch's alpha), eps outside
  # the square root, and weight decay added to the gradient (L2, not decoupled).
  rmsprop = optax.rmsprop(rate, decay=opt.decay, eps=opt.eps, eps_in_sqrt=False)
  if opt.weight_decay:
    return optax.chain(optax.add_decayed_weights(opt.weight_decay), rmsprop)
  return rmsprop


def _sgd(opt: ml_collections.ConfigDict, rate) -> optax.GradientTransformation:
  # SGD with momentum as Caffe's solver runs it (DSH's release, solver.prototxt): L2
  # weight decay added to the gradient (biases decayed unless `decay_biases` is off),
  # biases at `bias_lr_mult` times the rate. Caffe scales by the rate before the
  # momentum and optax after; the two agree while the rate is constant.
  weights = lambda params: jax.tree.map(lambda b: not b, _is_bias(params))
  parts = []
  if opt.weight_decay:
    mask = None if opt.decay_biases else weights
    parts.append(optax.add_decayed_weights(opt.weight_decay, mask=mask))
  if opt.bias_lr_mult != 1.0:
    parts.append(optax.masked(optax.scale(opt.bias_lr_mult), _is_bias))
  parts.append(optax.sgd(rate, momentum=opt.momentum or None))
  return optax.chain(*parts)


# Each optimiser from its settings and its learning rate (a number or an optax schedule).
OPTIMIZERS: dict[
  str, Callable[[ml_collections.ConfigDict, Any], optax.GradientTransformation]
] = {
  'adam': _adam,
  'rmsprop': _rmsprop,
  'sgd': _sgd,
}


def new_layer_names(opt: ml_collections.ConfigDict) -> tuple[str, ...]:
  return tuple(n.strip() for n in opt.get('new_layers', '').split(',') if n.strip())


def _in_new_layers(names: tuple[str, ...]):
  """A mask function: True for the parameters under the top-level modules `names`."""

  def mask(params):
    return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[0], 'key', None) in names, params
    )

  return mask


def create_optimizer(
  config: ml_collections.ConfigDict, total_steps: int | None = None
) -> optax.GradientTransformation:
  """The optimiser `config.optimizer.name` with `config.optimizer`'s settings and
  learning-rate schedule (`learning_rate`; `total_steps` is the run's length), after
  clipping the gradients' global norm to `config.optimizer.grad_clip_norm` when it is
  > 0 (not in either paper). The updates of `optimizer.new_layers` are scaled by
  `optimizer.new_layers_lr_mult` last, so that they move that many times faster under
  any optimiser."""
  make = registry.lookup(OPTIMIZERS, config.optimizer.name, 'optimizer')
  opt = make(config.optimizer, learning_rate(config.optimizer, total_steps))
  names = new_layer_names(config.optimizer)
  mult = config.optimizer.get('new_layers_lr_mult', 1.0)
  if names and mult != 1.0:
    opt = optax.chain(opt, optax.masked(optax.scale(mult), _in_new_layers(names)))
  if config.optimizer.grad_clip_norm < 0:
    raise ValueError(
      f'optimizer.grad_clip_norm={config.optimizer.grad_clip_norm}: use 0 (no clipping) '
      'or a positive global norm.'
    )
  if config.optimizer.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(config.optimizer.grad_clip_norm), opt)
  return opt


def create_model(config: ml_collections.ConfigDict):
  return models.create_model(config.model_name, **models.model_kwargs(config))


def init_variables(rng: jax.Array, config: ml_collections.ConfigDict, model):
  """The model's initial variables, with `config.model.pretrained`'s weights if set."""
  if config.model.pretrained:
    pretrained.check(config.model_name, config.model.pretrained)
  # Jitted: initialising a deep model op by op is slow on the CPU.
  init = jax.jit(functools.partial(model.init, train=False))
  size = config.data.image_size
  variables = init(rng, jnp.zeros((1, size, size, 3)))
  if config.model.pretrained:
    variables = pretrained.load_pretrained(config.model.pretrained, variables)
  if config.model.get('init_from'):
    variables = transfer_variables(config.model.init_from, variables)
  return variables


def _load_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, checkpoints.CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f'model.init_from={workdir!r} is not a dahjax training workdir (no '
      f'{checkpoints.CONFIG_FILE}); give the workdir of the run to start from.'
    )
  return checkpoints.read_config(path)


def check_init_from(workdir: str) -> None:
  """Raises FileNotFoundError unless `workdir` is a training workdir with a checkpoint."""
  checkpoints.step_to_evaluate(_load_run_config(workdir), workdir)


def transfer_variables(workdir: str, variables: dict[str, Any]) -> dict[str, Any]:
  """`variables` with every leaf of the same name and shape taken from the latest
  checkpoint of the run in `workdir`; the others are kept and logged."""
  source_config = _load_run_config(workdir)
  source = restore_for_eval(source_config, workdir, create_model(source_config))
  flat_source = flax.traverse_util.flatten_dict(
    {'params': source.params, 'batch_stats': source.batch_stats}
  )
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
  kept = []
  for key, value in flat.items():
    other = flat_source.get(key)
    if other is not None and other.shape == value.shape:
      flat[key] = jnp.asarray(other, value.dtype)
    else:
      kept.append('/'.join(key))
  logging.info(
    'Started from step %d of %s; freshly initialised: %s.',
    int(source.step),
    workdir,
    ', '.join(kept) or 'none',
  )
  return flax.traverse_util.unflatten_dict(flat)


def create_train_state(
  rng: jax.Array,
  config: ml_collections.ConfigDict,
  model,
  *,
  num_train: int = 0,
  total_steps: int | None = None,
) -> TrainState:
  """A new train state; `num_train` (the training images) sizes a loss's memory and
  `total_steps` (the run's length) a learning-rate schedule that needs it."""
  variables = init_variables(rng, config, model)
  unknown = set(new_layer_names(config.optimizer)) - set(variables['params'])
  if unknown:
    raise ValueError(
      f'optimizer.new_layers names {sorted(unknown)}, not parameter modules of '
      f'{config.model_name}; its modules are {sorted(variables["params"])}.'
    )
  memory = losses.init_memory(
    config.loss_name,
    num_train=num_train,
    bits=config.model.bits,
    num_classes=config.model.num_classes,
  )
  return TrainState.create(
    apply_fn=model.apply,
    params=variables['params'],
    batch_stats=variables.get('batch_stats', {}),
    tx=create_optimizer(config, total_steps),
    loss_memory=memory,
  )


def restore_for_eval(
  config: ml_collections.ConfigDict, workdir: str, model, checkpoint_step: int | None = None
) -> EvalState:
  """The parameters and BatchNorm statistics of a checkpoint of `workdir` (the latest,
  or `checkpoint_step`), without the optimiser state.

  Raises:
    FileNotFoundError: the workdir has no checkpoint, or none of that step; the message
      says how to train one or which steps there are.
  """
  step = checkpoints.step_to_evaluate(config, workdir, checkpoint_step)
  manager = checkpoints.create_manager(workdir, config, read_only=True)
  size = config.data.image_size
  variables = jax.eval_shape(
    functools.partial(model.init, train=False),
    jax.random.key(0),
    jnp.zeros((1, size, size, 3)),
  )
  target = {
    'params': variables['params'],
    'batch_stats': variables.get('batch_stats', {}),
    'step': jax.ShapeDtypeStruct((), jnp.int32),
  }
  restored = checkpoints.restore_partial(manager, step, target, workdir)
  return EvalState(restored['params'], restored['batch_stats'], restored['step'])
