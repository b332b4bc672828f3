"""Cluster start-up and launchers: what dahjax calls in each environment, with that
environment's variables standing in for it (and, for Cloud TPU VMs, its hardware
check patched), and the exact commands each launcher prints with --dry-run."""

import os
import subprocess

import jax
import pytest

from dahjax import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER_VARS = (
  'SLURM_JOB_ID',
  'SLURM_NTASKS',
  'SLURM_NPROCS',
  'OMPI_COMM_WORLD_SIZE',
  'TPU_WORKER_HOSTNAMES',
)


@pytest.fixture
def calls(monkeypatch):
  """The arguments of every jax.distributed.initialize call, in a clean environment."""
  for name in CLUSTER_VARS:
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setattr(parallel, '_on_cloud_tpu_vm', lambda: False)
  recorded = []
  monkeypatch.setattr(
    jax.distributed, 'initialize', lambda *args, **kwargs: recorded.append((args, kwargs))
  )
  monkeypatch.setattr(jax, 'process_index', lambda: 0)
  return recorded


def test_a_single_process_stays_on_its_own(calls, monkeypatch):
  monkeypatch.setenv('SLURM_JOB_ID', '7')
  monkeypatch.setenv('SLURM_NTASKS', '1')  # A one-task Slurm job.
  monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '1')
  parallel.initialize()
  assert calls == []


@pytest.mark.parametrize(
  'env',
  [
    {'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '16'},
    {'SLURM_JOB_ID': '7', 'SLURM_NPROCS': '2'},
    {'OMPI_COMM_WORLD_SIZE': '4'},
    {'TPU_WORKER_HOSTNAMES': 'w0,w1,w2,w3'},
  ],
  ids=['slurm', 'slurm-nprocs', 'open-mpi', 'gke-tpu'],
)
def test_a_cluster_is_left_to_jax_detection(calls, monkeypatch, env):
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  parallel.initialize()
  assert calls == [((), {})]  # jax.distributed.initialize() with no arguments.


def test_a_cloud_tpu_vm_is_always_initialised(calls, monkeypatch):
  """A TPU VM, one host or a pod slice, has no cluster variables: JAX reads its workers
  from the VM's metadata, so dahjax initialises whenever TPU chips are attached."""
  monkeypatch.setattr(parallel, '_on_cloud_tpu_vm', lambda: True)
  parallel.initialize()
  assert calls == [((), {})]


def test_explicit_processes(calls):
  parallel.initialize('10.0.0.1:8476', 4, 3)
  assert calls == [(('10.0.0.1:8476', 4, 3), {})]


def test_tpu_vm_detection_reads_the_pci_vendor(monkeypatch, tmp_path):
  """Google's PCI vendor id among the machine's devices, with libtpu installed."""
  import importlib.util

  devices = tmp_path / 'devices'
  for name, vendor in [('0000:00:04.0', '0x1af4'), ('0000:00:05.0', '0x1ae0')]:
    (devices / name).mkdir(parents=True)
    (devices / name / 'vendor').write_text(vendor + '\n')
  real_glob = parallel.glob.glob
  monkeypatch.setattr(
    parallel.glob,
    'glob',
    lambda p: (
      real_glob(str(devices / '*' / 'vendor'))
      if p.startswith('/sys/bus/pci')
      else real_glob(p)
    ),
  )
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: object())
  assert parallel._on_cloud_tpu_vm()
  (devices / '0000:00:05.0' / 'vendor').write_text('0x10de\n')  # An NVIDIA GPU instead.
  assert not parallel._on_cloud_tpu_vm()
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  (devices / '0000:00:05.0' / 'vendor').write_text('0x1ae0\n')
  assert not parallel._on_cloud_tpu_vm()  # TPU chips but no libtpu: JAX cannot use them.


def test_slurm_gives_each_task_the_gpu_of_its_local_id(monkeypatch):
  """JAX's Slurm detection, which dahjax relies on, picks device SLURM_LOCALID of the
  devices a task sees, which is why slurm_gpu.sbatch shows every task all of its node's
  GPUs instead of binding one to each (a bound task sees its GPU as device 0)."""
  from jax._src import clusters  # pylint: disable=g-import-not-at-top

  env = {
    'SLURM_JOB_ID': '4242',
    'SLURM_STEP_NODELIST': 'gpu[03-04]',
    'SLURM_NTASKS': '16',
    'SLURM_PROCID': '11',
    'SLURM_LOCALID': '3',
  }
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  address, count, pid, local = clusters.ClusterEnv.auto_detect_unset_distributed_params(
    None, None, None, None, None, 60
  )
  assert address.startswith('gpu03:') and (count, pid, local) == (16, 11, [3])


def dry_run(*args, env=None):
  out = subprocess.run(
    ['bash', *args],
    cwd=ROOT,
    env=dict(os.environ, **(env or {})),
    capture_output=True,
    text=True,
    check=True,
  )
  return out.stdout.splitlines()


def test_local_multiprocess_dry_run():
  lines = dry_run(
    'launch/local_multiprocess.sh',
    '--dry-run',
    '2',
    'configs/quickstart.py',
    '/tmp/w',
    '--config.num_epochs=1',
    env={'PORT': '4567', 'XLA_FLAGS': ''},
  )
  assert lines == [
    'env XLA_FLAGS=--xla_force_host_platform_device_count=1 JAX_PLATFORMS=cpu python -m '
    'dahjax.main --config configs/quickstart.py --workdir /tmp/w '
    f'--coordinator_address=127.0.0.1:4567 --num_processes=2 --process_id={i} '
    f'--config.num_epochs=1 > /tmp/w/logs/process_{i}.log'
    for i in range(2)
  ]
  assert not os.path.exists('/tmp/w/logs')  # A dry run starts and writes nothing.


def test_slurm_dry_run():
  lines = dry_run(
    'launch/slurm_gpu.sbatch',
    '--dry-run',
    'configs/dpfah_imagenet100.py',
    '/shared/runs/r',
    '--config.model.bits=64',
  )
  assert lines == [
    'srun --kill-on-bad-exit=1 python -m dahjax.main --config configs/dpfah_imagenet100.py '
    '--workdir /shared/runs/r --config.model.bits=64 '
  ]
  script = open(os.path.join(ROOT, 'launch', 'slurm_gpu.sbatch')).read()
  assert '--gpu-bind' not in script and '--gpus-per-task' not in script


def test_tpu_vm_dry_run():
  env = {
    'TPU_NAME': 'pod',
    'ZONE': 'us-central2-b',
    'ACCELERATOR_TYPE': 'v4-32',
    'RUNTIME_VERSION': 'tpu-ubuntu2204-base',
    'MOUNT_BUCKET': 'bkt',
    'SPOT': '1',
    'PROJECT': '',
    'PYTHON': '',
  }
  ssh = "gcloud compute tpus tpu-vm ssh pod --zone=us-central2-b --worker=all '--command="
  assert dry_run('launch/tpu_vm.sh', '--dry-run', 'create', env=env) == [
    'gcloud compute tpus tpu-vm create pod --zone=us-central2-b --accelerator-type=v4-32 '
    '--version=tpu-ubuntu2204-base --spot'
  ]
  install = dry_run('launch/tpu_vm.sh', '--dry-run', 'install', env=env)
  assert install[0] == (
    f"tar -C {ROOT} --exclude=.git '--exclude=*.egg-info' -czf /tmp/dahjax_src.tgz ."
  )
  assert install[1] == (
    'gcloud compute tpus tpu-vm scp /tmp/dahjax_src.tgz pod:dahjax_src.tgz '
    '--zone=us-central2-b --worker=all'
  )
  assert install[2].startswith(ssh + 'python3 -c ')
  assert (
    "python3 -m pip install -q -c requirements/lock.txt -e '\\''.[tpu]'\\''" in install[2]
  )
  assert install[3] == (
    ssh + 'sudo mkdir -p /mnt/bkt && sudo chown $USER /mnt/bkt && '
    "gcsfuse --implicit-dirs --rename-dir-limit=1000000 bkt /mnt/bkt'"
  )
  run = dry_run(
    'launch/tpu_vm.sh',
    '--dry-run',
    'run',
    'configs/x.py',
    '/mnt/bkt/r',
    '--config.seed=1',
    env=env,
  )
  assert run == [
    ssh
    + 'cd ~/dahjax && python3 -m dahjax.main --config configs/x.py --workdir /mnt/bkt/r '
    "--config.seed=1'"
  ]
  assert dry_run('launch/tpu_vm.sh', '--dry-run', 'delete', env=env) == [
    'gcloud compute tpus tpu-vm delete pod --zone=us-central2-b --quiet'
  ]
