"""Progress and metrics: the JSONL/TensorBoard metric writer, training and encoding
progress lines with ETA, and one duration format for both."""

import json
import os
import time
from typing import Any

from absl import logging
import jax
import tensorboardX


def format_duration(seconds: float) -> str:
  """HH:MM:SS (hours beyond 24 kept, unlike time.strftime)."""
  seconds = max(0, int(round(seconds)))
  return f'{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class MetricWriter:
  """Appends metrics to `workdir/metrics.jsonl` and TensorBoard event files in
  `workdir/tensorboard` (tensorboardX: no TensorFlow needed). Process 0 writes."""

  def __init__(self, workdir: str):
    self._active = jax.process_index() == 0
    self._path = os.path.join(workdir, 'metrics.jsonl')
    self._tb = (
      tensorboardX.SummaryWriter(os.path.join(workdir, 'tensorboard'))
      if self._active
      else None
    )

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self._active:
      return
    with open(self._path, 'a') as f:
      f.write(json.dumps({'step': step, **metrics}) + '\n')
    for name, value in metrics.items():
      if isinstance(value, (int, float)):
        self._tb.add_scalar(name, value, step)
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


class ProgressLog:
  """Logs progress lines (step, loss terms, steps/s, images/s, ETA) and records them.

  Speed is measured from `restart_clock` on: the training loop calls it after its first
  step, which compiles, and after each evaluation between steps, so neither distorts
  the speed and the ETA.
  """

  def __init__(
    self,
    writer: MetricWriter,
    total_steps: int,
    batch_size: int,
    start_step: int,
    clock=time.monotonic,
  ):
    self._writer, self._clock = writer, clock
    self._total, self._batch = total_steps, batch_size
    self._last_step, self._last_time = start_step, clock()

  def report(self, step: int, metrics: dict[str, float]) -> str:
    """Logs and records the line of `step`; returns it."""
    now = self._clock()
    terms = ' '.join(f'{k} {v:.4f}' for k, v in metrics.items())
    speed = {}
    if step > self._last_step and now > self._last_time:
      rate = (step - self._last_step) / (now - self._last_time)
      speed = {'steps_per_sec': rate, 'images_per_sec': rate * self._batch}
      line = (
        f'step {step}/{self._total}  {terms}  {rate:.2f} steps/s  '
        f'{rate * self._batch:.1f} images/s  '
        f'ETA {format_duration((self._total - step) / rate)}'
      )
    else:
      line = f'step {step}/{self._total}  {terms}'
    self._last_step, self._last_time = step, now
    logging.info('%s', line)
    self._writer.write(step, {f'train_{k}': v for k, v in {**metrics, **speed}.items()})
    return line

  def restart_clock(self, step: int) -> None:
    """Measures the next speed from `step`, now."""
    self._last_step, self._last_time = step, self._clock()


class EncodeProgress:
  """Progress lines of a long encode, at most one every `interval` seconds.

  Speed is measured from the first update on, so the first batch, which includes
  compilation, does not distort images/s and the ETA.
  """

  def __init__(self, name: str, total: int, interval: float = 5.0, clock=time.monotonic):
    self._name, self._total, self._interval, self._clock = name, total, interval, clock
    self._created = clock()
    self._start, self._start_done = None, 0  # Time and images done at the first update.
    self._last = 0.0

  def _rate(self, now: float, done: int) -> float | None:
    if self._start is None or now <= self._start or done <= self._start_done:
      return None
    return (done - self._start_done) / (now - self._start)

  def update(self, done: int) -> str | None:
    """Records that `done` images are encoded; returns the line logged, if any."""
    now = self._clock()
    if self._start is None:
      self._start = self._last = now
      self._start_done = done
      return None
    if now - self._last < self._interval or done >= self._total:
      return None
    self._last = now
    rate = self._rate(now, done) or 1e-9
    line = (
      f'Encoding {self._name}: {done:,}/{self._total:,} '
      f'({100 * done / self._total:.0f}%), {rate:,.0f} images/s, '
      f'ETA {format_duration((self._total - done) / rate)}'
    )
    logging.info(line)
    return line

  def finish(self, done: int) -> str:
    """Logs and returns the closing line: images, wall time and speed."""
    now = self._clock()
    line = (
      f'Encoded {self._name}: {done:,} images in {format_duration(now - self._created)}'
    )
    rate = self._rate(now, done)
    if rate is not None:
      line += f' ({rate:,.0f} images/s after the first batch, which compiles)'
    logging.info(line)
    return line
