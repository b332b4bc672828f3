#!/usr/bin/env bash
# dahjax on a Cloud TPU VM or pod slice: create, install, run on every worker, copy back.
#
#   launch/tpu_vm.sh [--dry-run] create     # a TPU VM (or pod slice) named $TPU_NAME
#   launch/tpu_vm.sh install                # copy this checkout to every worker, pip install
#   launch/tpu_vm.sh run CONFIG WORKDIR [--config.x=y ...]
#   launch/tpu_vm.sh copy WORKDIR LOCAL_DIR # results of worker 0 back here
#   launch/tpu_vm.sh delete
#
# --dry-run prints the commands (gcloud, and what runs on the workers) instead of running.
# Settings come from the environment, never from this file:
#   TPU_NAME (required), ZONE (required), ACCELERATOR_TYPE (e.g. v5litepod-8, v4-32),
#   RUNTIME_VERSION (e.g. v2-alpha-tpuv5-lite), PROJECT (default: gcloud's),
#   SPOT=1 for a spot VM (preemptible: dahjax checkpoints on SIGTERM and resumes),
#   PYTHON on the workers (default python3; dahjax needs 3.11 or later: on an image with
#   an older python3, install python3.11 there and set PYTHON=python3.11).
# On a pod slice every worker runs the same command; JAX finds the slice's workers from
# the VM's metadata. WORKDIR must be shared by all workers, e.g. a Cloud Storage bucket
# mounted with gcsfuse at the same path on each (MOUNT_BUCKET=my-bucket mounts it at
# /mnt/my-bucket during `install`), since checkpoints are written by all workers
# together. Orbax commits a checkpoint by renaming its temporary directory, which
# gcsfuse allows only up to --rename-dir-limit files: the mount sets it high.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == --dry-run ]]; then dry_run=1; shift; fi
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
python=${PYTHON:-python3}
project_flag=()
[[ -n "${PROJECT:-}" ]] && project_flag=(--project="$PROJECT")
tpu=(gcloud compute tpus tpu-vm)
show() {  # Prints a command as a shell would read it, quoting only where needed.
  local out=() a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}
run() {  # Runs a command, or prints it under --dry-run.
  if [[ $dry_run -eq 1 ]]; then show "$@"; else "$@"; fi
}
on_all() { run "${tpu[@]}" ssh "$TPU_NAME" --zone="$ZONE" "${project_flag[@]}" --worker=all --command="$1"; }
repo_dir=$(cd "$(dirname "$0")/.." && pwd)

case "${1:-}" in
  create)
    : "${ACCELERATOR_TYPE:?set ACCELERATOR_TYPE}" "${RUNTIME_VERSION:?set RUNTIME_VERSION}"
    spot=()
    [[ "${SPOT:-0}" == 1 ]] && spot=(--spot)
    run "${tpu[@]}" create "$TPU_NAME" --zone="$ZONE" "${project_flag[@]}" \
      --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" "${spot[@]}"
    ;;
  install)
    run tar -C "$repo_dir" --exclude=.git --exclude='*.egg-info' -czf /tmp/dahjax_src.tgz .
    run "${tpu[@]}" scp /tmp/dahjax_src.tgz "$TPU_NAME":dahjax_src.tgz --zone="$ZONE" \
      "${project_flag[@]}" --worker=all
    on_all "$python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
{ echo 'dahjax needs Python >= 3.11: install python3.11 and set PYTHON=python3.11' >&2; exit 1; } && \
mkdir -p ~/dahjax && tar -C ~/dahjax -xzf ~/dahjax_src.tgz && cd ~/dahjax && \
$python -m pip install -q -c requirements/lock.txt -e '.[tpu]'"
    if [[ -n "${MOUNT_BUCKET:-}" ]]; then
      on_all "sudo mkdir -p /mnt/$MOUNT_BUCKET && sudo chown \$USER /mnt/$MOUNT_BUCKET && \
gcsfuse --implicit-dirs --rename-dir-limit=1000000 $MOUNT_BUCKET /mnt/$MOUNT_BUCKET"
    fi
    ;;
  run)
    [[ $# -ge 3 ]] || { echo "usage: $0 run CONFIG WORKDIR [flags]" >&2; exit 2; }
    config=$2 workdir=$3
    shift 3
    on_all "cd ~/dahjax && $python -m dahjax.main --config $config --workdir $workdir $*"
    ;;
  copy)
    [[ $# -eq 3 ]] || { echo "usage: $0 copy WORKDIR LOCAL_DIR" >&2; exit 2; }
    run mkdir -p "$3"
    run "${tpu[@]}" scp --recurse "$TPU_NAME:$2" "$3" --zone="$ZONE" "${project_flag[@]}" \
      --worker=0
    ;;
  delete)
    run "${tpu[@]}" delete "$TPU_NAME" --zone="$ZONE" "${project_flag[@]}" --quiet
    ;;
  *)
    echo "usage: $0 [--dry-run] create|install|run|copy|delete ..." >&2
    exit 2
    ;;
esac
