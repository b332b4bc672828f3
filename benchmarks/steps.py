"""The train step the benchmarks time, built once for all of them (no flags here, so
every benchmark script can import it)."""


def train_step_setup(config, batch_size: int):
  """(jitted train step, replicated state, sharded batch of random images).

  The project's own `train.make_train_step` and `state.create_train_state` for
  `config`, with `batch_size` random images of `config.data.image_size` pixels and
  one-hot labels cycling through the classes.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from dahjax import parallel  # pylint: disable=g-import-not-at-top
  from dahjax import state as state_lib  # pylint: disable=g-import-not-at-top
  from dahjax import train  # pylint: disable=g-import-not-at-top

  size = config.data.image_size
  mesh = parallel.create_mesh()
  model = state_lib.create_model(config)
  state = state_lib.create_train_state(jax.random.key(0), config, model)
  state = jax.device_put(state, parallel.replicated(mesh))
  rng = np.random.default_rng(0)
  labels = np.eye(config.model.num_classes, dtype=np.float32)[
    np.arange(batch_size) % config.model.num_classes
  ]
  batch = parallel.global_batch(
    {'image': rng.random((batch_size, size, size, 3), dtype=np.float32), 'label': labels},
    mesh,
  )
  return train.make_train_step(config), state, batch
