"""Multi-host initialisation, the device mesh and batch sharding.

One mesh axis, 'data', spans every device of every process: the global batch is split
along it and parameters are replicated (ResNet18's 11M and ResNet30's 3M parameters fit
every device many times over, so sharding them would only add communication). A mean
over a sharded global array is already a global mean, so losses over all pairs of the
batch see pairs across devices and hosts, and BatchNorm's statistics are those of the
global batch.

Several processes (hosts) join through JAX's distributed runtime: detected on Cloud TPU
pod slices, Slurm and Open MPI, or given explicitly for a local run
(`launch/local_multiprocess.sh`). Each process feeds its own rows of the global batch
(`global_batch`).
"""

import collections
from collections.abc import Iterator
import glob
import importlib.util
import os
import platform

from absl import logging
import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

_GOOGLE_PCI_VENDOR = '0x1ae0'  # TPU chips on a Cloud TPU VM are PCI devices of Google's.


def _on_cloud_tpu_vm() -> bool:
  """Whether TPU chips are attached to this machine and libtpu is installed: a Cloud TPU
  VM (one host or one worker of a pod slice), as JAX's own start-up tells it."""
  if importlib.util.find_spec('libtpu') is None:
    return False
  for vendor in glob.glob('/sys/bus/pci/devices/*/vendor'):
    try:
      with open(vendor) as f:
        if f.read().strip() == _GOOGLE_PCI_VENDOR:
          return True
    except OSError:
      continue
  return False


def _cluster_detected() -> str | None:
  """The cluster environment this process runs in, if JAX can set up its processes.

  Slurm and Open MPI jobs of several tasks, GKE TPU pods (TPU_WORKER_HOSTNAMES) and every
  Cloud TPU VM: on a TPU VM JAX reads the slice's workers from the VM's metadata, so it
  is always initialised (a one-host slice becomes one process) and SIGTERM is handled
  alike on every slice.
  """
  env = os.environ
  if (
    int(env.get('SLURM_NTASKS', env.get('SLURM_NPROCS', '1'))) > 1 and 'SLURM_JOB_ID' in env
  ):
    return 'Slurm'
  if int(env.get('OMPI_COMM_WORLD_SIZE', '1')) > 1:
    return 'Open MPI'
  if len([h for h in env.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]) > 1:
    return 'a GKE TPU slice'
  if _on_cloud_tpu_vm():
    return 'a Cloud TPU VM'
  return None


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> None:
  """Joins JAX's distributed runtime; must run before any JAX computation.

  With `coordinator_address` (host:port of process 0), `num_processes` and `process_id`
  the processes are given explicitly; without them a Cloud TPU VM or pod slice, a Slurm
  or an Open MPI job is detected and `jax.distributed.initialize()` finds its processes
  itself (JAX's cluster detection); a single process elsewhere stays on its own.
  """
  explicit = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in explicit):
    if any(v is None for v in explicit):
      raise ValueError(
        'A multi-process run needs --coordinator_address, --num_processes '
        'and --process_id together, got '
        f'{coordinator_address!r}, {num_processes!r}, {process_id!r}.'
      )
    if not 0 <= process_id < num_processes:
      raise ValueError(f'--process_id={process_id} must lie in [0, {num_processes}).')
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif (cluster := _cluster_detected()) is not None:
    logging.info('Joining the processes of %s.', cluster)
    jax.distributed.initialize()
  else:
    return
  logging.info(
    'Process %d of %d; %d local and %d global devices.',
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def describe_hardware() -> str:
  """What this run computes on, in words: the accelerators and their count, or on the
  CPU the processor and the cores each process may use; and the number of processes."""
  devices = jax.devices()
  if devices[0].platform == 'cpu':
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None
    cores = cores or os.cpu_count()
    what = f'{processor_name()}, {cores} core{"s" * (cores != 1)}'
    if jax.process_count() > 1:
      what += ' each'
  else:
    what = f'{len(devices)} x {devices[0].device_kind}'
  if jax.process_count() > 1:
    what += f', {jax.process_count()} processes'
  return what


def processor_name() -> str:
  """The CPU's model name as /proc/cpuinfo gives it, else the platform's processor."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or 'CPU'


def create_mesh(devices=None) -> Mesh:
  """A 1-D 'data' mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh(
    (len(devices),), ('data',), devices=devices, axis_types=(jax.sharding.AxisType.Auto,)
  )


def data_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P('data'))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, what: str = 'batch_size') -> None:
  """Raises unless the global batch splits evenly over devices and processes."""
  devices, processes = jax.device_count(), jax.process_count()
  if batch_size % devices or batch_size % processes:
    raise ValueError(
      f'{what}={batch_size} must be divisible by the {devices} devices '
      f'(and {processes} processes) it is split over; pick a multiple '
      f'of {np.lcm(devices, processes)}.'
    )


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's rows into global arrays sharded on 'data'."""
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local)


def prefetch_to_mesh(
  batches: Iterator[dict[str, np.ndarray]], mesh: Mesh, size: int = 2
) -> Iterator[dict[str, jax.Array]]:
  """`global_batch` of each of `batches`, `size` batches ahead: transfers to the
  devices are asynchronous, so the next batches travel while the current step runs."""
  queue = collections.deque()
  for local in batches:
    queue.append(global_batch(local, mesh))
    if len(queue) >= size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()
