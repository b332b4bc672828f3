"""Training: the jitted train step and the train loop (checkpoints, preemption,
evaluation during training and at the end).

The step is `jax.jit` over a mesh of all devices with the batch sharded on 'data' and
the state replicated, compiled once, donating the incoming state. A run restarted in
the same workdir resumes exactly from its latest checkpoint.
"""

from collections.abc import Callable
import contextlib
import functools
import inspect
import signal
import sys
import threading
import time
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import optax

from dahjax import checkpoints
from dahjax import evaluate
from dahjax import losses
from dahjax import parallel
from dahjax import progress
from dahjax import state as state_lib
from dahjax.data import bad_images
from dahjax.data import input_data
from dahjax.data import pipeline


def loss_and_grads(
  state: state_lib.TrainState,
  batch: dict[str, jax.Array],
  *,
  loss_fn,
  loss_kwargs: dict[str, Any],
):
  """((loss, (loss terms, new BatchNorm statistics)), gradients) on a global batch.

  Under a mesh the batch is one global array: the pairwise losses see every pair of
  the global batch and BatchNorm normalises with the global batch's statistics, so the
  result is that of one device holding the whole batch.
  """

  def compute_loss(params):
    outputs, updates = state.apply_fn(
      {'params': params, 'batch_stats': state.batch_stats},
      pipeline.model_input(batch['image'], batch.get('flip')),
      train=True,
      mutable=['batch_stats'],
    )
    loss, aux = loss_fn(outputs=outputs, labels=batch['label'], **loss_kwargs)
    return loss, (aux, updates['batch_stats'])

  return jax.value_and_grad(compute_loss, has_aux=True)(state.params)


def train_step(
  state: state_lib.TrainState,
  batch: dict[str, jax.Array],
  *,
  loss_fn,
  loss_kwargs: dict[str, Any],
  schedules: dict[str, Callable[[jax.Array], jax.Array]] | None = None,
) -> tuple[state_lib.TrainState, dict[str, jax.Array]]:
  """One optimisation step on a global batch {'image', 'label'} (and optionally 'flip',
  see `pipeline.model_input`; images uint8 or float32 in [0, 1]; 'index' for a loss
  with a memory); returns metrics.

  The loss gets the step when it takes `step`, and the state's `loss_memory` with the
  batch's `indices` when it takes `memory`; the memory it returns replaces the state's.

  `schedules` maps loss hyper-parameters to functions of the step (optax schedules):
  their values at this step join `loss_kwargs` and the metrics.
  """
  scheduled = {k: f(state.step) for k, f in (schedules or {}).items()}
  kwargs = {**loss_kwargs, **scheduled}
  params = inspect.signature(loss_fn).parameters
  if 'step' in params:
    kwargs['step'] = state.step
  if 'memory' in params:
    kwargs.update(memory=state.loss_memory, indices=batch['index'])
  (loss, (aux, batch_stats)), grads = loss_and_grads(
    state, batch, loss_fn=loss_fn, loss_kwargs=kwargs
  )
  memory = aux.pop('memory', None)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  if memory is not None:
    state = state.replace(loss_memory=memory)
  return state, {'loss': loss, **aux, **scheduled}


def loss_schedules(config: ml_collections.ConfigDict) -> dict[str, Callable]:
  """Step-dependent loss hyper-parameters: `loss.hash_warmup_steps` > 0 raises the
  hash terms' weight linearly from 1/N at the first step to 1 at step N (not in either
  paper; see `losses.dpfah_loss`)."""
  steps = config.loss.hash_warmup_steps
  if not steps:
    return {}
  return {'hash_weight': optax.linear_schedule(1.0 / steps, 1.0, steps - 1)}


def make_train_step(config: ml_collections.ConfigDict):
  """The jitted train step. It takes a state replicated over the mesh and a batch
  sharded on 'data' (`parallel.global_batch`); jit follows those input shardings
  (docs/design.md says why not `in_shardings`)."""
  step = functools.partial(
    train_step,
    loss_fn=losses.get_loss(config.loss_name),
    loss_kwargs=losses.loss_kwargs(config.loss_name, config.loss),
    schedules=loss_schedules(config),
  )
  return jax.jit(step, donate_argnums=0)


def data_position(
  config: ml_collections.ConfigDict, sampler, step: int, train_seconds: float | None = None
) -> dict[str, Any]:
  """Where the input pipeline stands after `step`, saved with each checkpoint, with the
  training time that brought the run there (`TrainClock`; None when unknown).

  Batches are a pure function of (sampler, seed, step), so this is the whole state of
  the data iterator: a run resumed from the checkpoint reads batch `step + 1` next.
  """
  return {
    'next_step': step + 1,
    'epoch': step // sampler.steps_per_epoch,
    'steps_per_epoch': sampler.steps_per_epoch,
    'sampler': config.data.sampler,
    'seed': config.seed,
    'batch_size': config.batch_size,
    'train_seconds': train_seconds,
    'hardware': parallel.describe_hardware(),
  }


class TrainClock:
  """Wall time spent training a run, over all its starts: the time of the checkpoint it
  resumed from plus this start's, without the learning curve's evaluations. A run
  resumed from a checkpoint that has no such time has none (None)."""

  def __init__(self, resumed_seconds: float | None, clock=time.monotonic):
    self._base, self._clock = resumed_seconds, clock
    self._start, self._paused = clock(), 0.0

  def exclude(self, seconds: float) -> None:
    """Leaves out `seconds` spent on something other than training."""
    self._paused += seconds

  def seconds(self) -> float | None:
    if self._base is None:
      return None
    return self._base + self._clock() - self._start - self._paused


def num_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  if config.num_train_steps > 0:
    return config.num_train_steps
  return config.num_epochs * steps_per_epoch


class IntervalMeans:
  """Step-weighted means of logged training terms since the last `pop`."""

  def __init__(self):
    self._sums, self._steps = {}, 0

  def add(self, means: dict[str, float], steps: int) -> None:
    for k, v in means.items():
      self._sums[k] = self._sums.get(k, 0.0) + v * steps
    self._steps += steps

  def pop(self) -> dict[str, float]:
    out = {k: v / self._steps for k, v in self._sums.items()} if self._steps else {}
    self._sums, self._steps = {}, 0
    return out


class Preempted(Exception):
  """Training stopped on SIGTERM after saving a checkpoint at `step`."""

  def __init__(self, step: int):
    super().__init__(
      f'Stopped by SIGTERM at step {step}, after saving a checkpoint; '
      'run the same command again to resume.'
    )
    self.step = step


# Exit status after SIGTERM, once a checkpoint is saved: 128 + SIGTERM, as a shell
# reports a terminated process, so schedulers requeue rather than count it done.
EXIT_PREEMPTED = 143


@contextlib.contextmanager
def exit_when_stopped():
  """Ends the process when training stops before its end: after a SIGTERM (`Preempted`,
  a checkpoint saved) with a warning and `EXIT_PREEMPTED`; on an unreadable image under
  data.bad_images='error' with one `dahjax: ...` line (the checkpoints are kept)."""
  try:
    yield
  except Preempted as e:
    logging.warning('%s', e)
    sys.exit(EXIT_PREEMPTED)
  except bad_images.BadImageError as e:
    sys.exit(f'dahjax: {e}')


class PreemptionWatch:
  """Notices SIGTERM, what Cloud TPU preemption and Slurm send before stopping a job.

  Every process installs a handler that only sets a flag. A single process stops at the
  next step. Several processes must stop at the same step, since a checkpoint is
  written by all of them together: every `check_every` steps they gather their flags
  (one small collective) and all stop when any was signalled, so a SIGTERM to any one
  process stops the run. Orbax's `reached_preemption` (JAX's own preemption notice,
  where the runtime receives one) stops them at an agreed step too.
  """

  def __init__(self, manager, check_every: int):
    self._manager = manager
    self._check_every = max(1, check_every)
    self._signalled = False
    self._previous = None
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint at an agreed step.')
    self._signalled = True

  def reached(self, step: int) -> bool:
    if jax.process_count() == 1:
      return self._signalled
    if self._manager.reached_preemption(step):
      return True
    if step % self._check_every:
      return False
    flags = multihost_utils.process_allgather(np.int32(self._signalled))
    return bool(np.any(flags))

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def replaced_images(local: int) -> int:
  """Training images replaced as unreadable since the run (re)started, over all
  processes (a collective: every process calls it at the same steps)."""
  if jax.process_count() == 1:
    return local
  return int(np.sum(multihost_utils.process_allgather(np.int64(local))))


def first_non_finite(start_step: int, history: list[dict[str, Any]]):
  """(step, its loss terms as floats) of the first step with a non-finite term, or None."""
  for i, metrics in enumerate(history):
    values = {k: float(v) for k, v in metrics.items()}
    if not all(np.isfinite(v) for v in values.values()):
      return start_step + i, values
  return None


def check_finite(start_step: int, history: list[dict[str, Any]]) -> None:
  """Raises FloatingPointError naming the first step whose loss terms are not finite."""
  bad = first_non_finite(start_step, history)
  if bad is not None:
    step, values = bad
    terms = ', '.join(f'{k} {v:.6g}' for k, v in values.items())
    raise FloatingPointError(
      f'Non-finite loss at step {step} ({terms}). Training stopped before saving '
      'this state; the last checkpoint is untouched. Lower the learning rate or check '
      'the input data, then run again to resume from that checkpoint.'
    )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming when a checkpoint exists), then evaluates.

  With `config.eval_every_steps` > 0 a learning curve is recorded during training
  (`evaluate.LearningCurve`), and with `config.plateau.evaluations` > 0 training stops
  early once that curve stops gaining (`evaluate.plateau_reached`); the metrics returned
  are the full evaluation of the final state.
  """
  checkpoints.check_run_config(config, workdir)
  data = input_data.prepare(config, workdir)
  sampler = pipeline.make_sampler(
    config.data.sampler,
    labels=data.pool.labels,
    indices=data.splits['train'],
    batch_size=config.batch_size,
    seed=config.seed,
  )
  total_steps = num_train_steps(config, sampler.steps_per_epoch)
  model = state_lib.create_model(config)
  mesh = parallel.create_mesh()

  state = state_lib.create_train_state(
    jax.random.key(config.seed),
    config,
    model,
    num_train=len(data.splits['train']),
    total_steps=total_steps,
  )
  # Replicated before restoring, so a checkpoint is read straight into the mesh's
  # sharding (moving arrays between processes afterwards needs cross-host transfers,
  # which a multi-process CPU backend does not have).
  state = jax.device_put(state, parallel.replicated(mesh))
  manager = checkpoints.create_manager(workdir, config)
  state = checkpoints.restore_latest(manager, state, workdir)
  start_step = int(state.step)
  clock = TrainClock(0.0)
  if start_step:
    resumed = checkpoints.read_data_position(config, workdir, start_step) or {}
    clock = TrainClock(resumed.get('train_seconds'))
  step_fn = make_train_step(config)
  logging.info(
    'Training %s for %d steps (%d per epoch, batch %d) from step %d on %d '
    'devices in %d processes.',
    config.model_name,
    total_steps,
    sampler.steps_per_epoch,
    config.batch_size,
    start_step,
    jax.device_count(),
    jax.process_count(),
  )

  # Batches are a function of the step: starting at `start_step` continues the data
  # exactly where the checkpoint left it.
  bad_log = bad_images.BadImageLog(data.pool, workdir, jax.process_index())
  batches = pipeline.train_dataset(
    data.pool,
    sampler,
    image_size=config.data.image_size,
    random_flip=config.data.random_flip,
    seed=config.seed,
    start_step=start_step,
    num_steps=total_steps,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
    num_threads=config.data.num_threads,
    num_workers=config.data.num_workers,
    transform=config.data.transform,
    resize_size=config.data.resize_size,
    bad_images=config.data.bad_images,
    bad_image_log=bad_log,
  )
  # Each batch is sent to the devices while the step before it runs.
  device_batches = parallel.prefetch_to_mesh(batches, mesh)
  writer = progress.MetricWriter(workdir)
  log = progress.ProgressLog(writer, total_steps, config.batch_size, start_step)
  curve = None
  if config.eval_every_steps > 0:
    curve = evaluate.LearningCurve(
      config,
      workdir,
      data=data,
      model=model,
      mesh=mesh,
      writer=writer,
      steps_per_epoch=sampler.steps_per_epoch,
    )
  interval = IntervalMeans()  # Training terms since the last learning-curve point.

  def save_checkpoint(step: int) -> None:
    position = data_position(config, sampler, step, clock.seconds())
    checkpoints.save(manager, step, state, position)

  def curve_point(step: int, train_means: dict[str, float]) -> None:
    start = time.monotonic()
    curve.evaluate(state, step, train_means)
    clock.exclude(time.monotonic() - start)  # The training time leaves it out.

  def curve_step(step: int) -> bool:
    # The last point comes from the full evaluation of the run.
    return curve is not None and step % config.eval_every_steps == 0 and step != total_steps

  def at_plateau(step: int) -> bool:
    # config.plateau: stop once the curve has stopped gaining (off when evaluations is 0).
    rule = config.plateau
    return (
      curve is not None
      and rule.evaluations > 0
      and curve.reached_plateau(step, rule.min_delta, rule.evaluations)
    )

  if (
    0 < start_step < total_steps
    and curve_step(start_step)
    and not curve.has_point(start_step)
  ):
    # Stopped after saving this step's checkpoint but before its point was recorded
    # (a SIGTERM, or a kill while it was being evaluated): record it now, without the
    # training terms of the steps before it, which were not saved.
    curve_point(start_step, {})
  # A run that stopped at its plateau stays stopped when it is started again.
  plateau = start_step > 0 and at_plateau(start_step)
  last_step = start_step if plateau else total_steps
  preemption = PreemptionWatch(manager, config.preemption_check_every_steps)
  history = []  # Metrics of the steps since the last check, on the device.
  try:
    for step in range(start_step + 1, last_step + 1):
      state, metrics = step_fn(state, next(device_batches))
      history.append(metrics)
      if step == start_step + 1:  # It compiled: measure speed from here.
        jax.block_until_ready(metrics)
        log.restart_clock(step)
      preempted = preemption.reached(step)
      save = step % config.checkpoint_every_steps == 0 or step == total_steps or preempted
      point = curve_step(step)
      if save or point or step % config.log_every_steps == 0:
        # Every step since the last check must be finite before anything is saved.
        host = jax.device_get(history)
        check_finite(step - len(host) + 1, host)
        summary = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
        interval.add(summary, len(host))
        history = []
        log.report(step, summary)
        replaced = replaced_images(bad_log.replaced)
        if replaced:
          writer.write(step, {'bad_images_replaced': replaced})
      if save:
        save_checkpoint(step)
      if preempted:
        manager.wait_until_finished()
        raise Preempted(step)
      if point:
        curve_point(step, interval.pop())
        log.restart_clock(step)
        if at_plateau(step):
          logging.info(
            'The learning curve gained no more than %g mAP over its last %d points: '
            'stopping at step %d of %d.',
            config.plateau.min_delta,
            config.plateau.evaluations,
            step,
            total_steps,
          )
          if not save:
            save_checkpoint(step)
          plateau = True
          break
  finally:
    preemption.close()
    if bad_log.summary():
      logging.warning('%s', bad_log.summary())
  manager.wait_until_finished()
  metrics = evaluate.evaluate(
    config,
    workdir,
    state=state,
    model=model,
    data=data,
    mesh=mesh,
    writer=writer,
    # Stopped at its plateau, the run's last point is on the curve already, with its
    # training terms; the final evaluation adds no second one of the same step.
    curve=None if plateau else curve,
    train_means=interval.pop(),
  )
  writer.close()
  return metrics
