"""Device mesh and batch sharding for data-parallel training on all devices.

One mesh axis, 'data', spans every device of every process: the global batch is split
along it and parameters are replicated. A mean over a sharded global array is already a
global mean, so losses over all pairs of the batch see pairs across devices.
"""

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np


def create_mesh() -> Mesh:
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P('data'))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, what: str = 'batch_size') -> None:
  """Raises unless the global batch splits evenly over devices and processes."""
  devices, processes = jax.device_count(), jax.process_count()
  if batch_size % devices or batch_size % processes:
    raise ValueError(f'{what}={batch_size} must be divisible by the {devices} devices '
                     f'(and {processes} processes) it is split over; pick a multiple '
                     f'of {np.lcm(devices, processes)}.')


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's rows into global arrays sharded on 'data'."""
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                      local)
