"""Every registered loss trains through the project's train step on DSH's small CNN."""

import jax
import numpy as np
import pytest

from configs import default
from dahjax import comparison
from dahjax import losses
from dahjax import parallel
from dahjax import state as state_lib
from dahjax import train


def train_two_steps(config, name):
  """Two train steps of loss `name` on `config`'s model; checks what moved."""
  rng = np.random.default_rng(0)
  batch = {
    'image': rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
    'label': np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]],
    'index': np.array([3, 0, 7, 5, 1, 9], np.int32),
  }
  model = state_lib.create_model(config)
  state = state_lib.create_train_state(jax.random.key(0), config, model, num_train=10)
  before = jax.tree.map(np.asarray, (state.params, state.loss_memory))
  mesh = parallel.create_mesh()
  state = jax.device_put(state, parallel.replicated(mesh))
  step = train.make_train_step(config)
  for _ in range(2):
    state, metrics = step(state, parallel.global_batch(batch, mesh))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  head = lambda p: p['head'] if 'head' in p else p  # noqa: E731  ResNet18 nests its head.
  after, first = head(state.params), head(before[0])
  assert not np.allclose(after['hash']['kernel'], first['hash']['kernel'])
  # The classifier learns exactly under the losses that say they train it (Adam without
  # weight decay leaves a weight with no gradient where it was).
  moved = not np.array_equal(after['classifier']['kernel'], first['classifier']['kernel'])
  assert moved == losses.trains_classifier(name)
  if before[1]:  # A memory: the batch's rows were written, the others not.
    seen = np.isin(np.arange(10), batch['index'])
    rows = np.asarray(state.loss_memory['U'])  # Every memory holds the outputs U.
    assert np.any(rows[seen] != 0, axis=1).all() and not rows[~seen].any()


@pytest.mark.parametrize('name', losses.names())
def test_every_loss_trains_a_step(name):
  config = default.get_config()
  config.model_name, config.loss_name = 'dsh_cnn', name
  config.model.num_classes = 3
  train_two_steps(comparison.run_config(config, name, 8), name)


@pytest.mark.parametrize(
  'model_name,name',
  [
    ('dpfah_resnet18', 'dah'),
    ('dpfah_resnet18', 'greedyhash'),
    ('dah_resnet30', 'greedyhash'),
  ],
)
def test_the_comparisons_heads_train_on_the_papers_backbones(model_name, name):
  """DAH's and GreedyHash's heads on DPFAH's ResNet18 (32 px stem) and GreedyHash's on
  DAH's ResNet30 (without CBAM, to compile faster), as the comparison sets them."""
  base = default.get_config()
  base.model_name = model_name
  base.model.update(num_classes=3, stem='cifar', attention='stem')
  if model_name == 'dah_resnet30':
    base.model.attention = 'none'
  train_two_steps(comparison.run_config(base, name, 8), name)
