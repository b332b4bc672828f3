"""Tests of training progress lines and the registry lookup."""

import pytest

from dahjax import progress
from dahjax import registry


class _Writer:
  def __init__(self):
    self.lines = []

  def write(self, step, metrics):
    self.lines.append((step, metrics))


def test_progress_speed_excludes_compilation_and_eta_passes_a_day():
  now = [0.0]
  writer = _Writer()
  log = progress.ProgressLog(
    writer, total_steps=100_000, batch_size=20, start_step=0, clock=lambda: now[0]
  )
  now[0] = 90.0  # The first step compiled for 90 s.
  log.restart_clock(1)
  assert log.report(1, {'loss': 2.0}) == 'step 1/100000  loss 2.0000'  # No speed yet.
  now[0] += 49.0
  line = log.report(50, {'loss': 1.5})  # 49 steps in 49 s: 1 step/s, 20 images/s.
  assert line == (
    'step 50/100000  loss 1.5000  1.00 steps/s  20.0 images/s  ETA 27:45:50'
  )  # 99,950 s: more than a day, not wrapped at 24 h.
  assert writer.lines[0] == (1, {'train_loss': 2.0})
  assert writer.lines[1][1]['train_images_per_sec'] == pytest.approx(20.0)


def test_lookup_lists_the_valid_names():
  components = {'b': 2, 'a': 1}
  assert registry.lookup(components, 'a', 'thing') == 1
  with pytest.raises(ValueError, match=r"^Unknown thing 'c'; valid things: a, b\.$"):
    registry.lookup(components, 'c', 'thing')
  with pytest.raises(ValueError, match=r'valid sources: a, b\.$'):
    registry.lookup(components, 'c', 'data source', 'sources')
