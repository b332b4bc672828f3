#!/usr/bin/env bash
# N dahjax processes on this machine, joined by JAX's distributed runtime.
#
#   launch/local_multiprocess.sh [--dry-run] NUM_PROCESSES CONFIG WORKDIR [--config.x=y ...]
#
# Every process runs `python -m dahjax.main` on CPU with DEVICES_PER_PROCESS simulated
# devices (default 1); process 0 hosts the coordinator on a free local port (or $PORT).
# Logs go to $LOG_DIR (default WORKDIR/logs/process_<i>.log). SIGTERM and SIGINT are
# passed on to every process (they checkpoint and stop); the script exits with the first
# non-zero exit status, or 0.
# --dry-run prints each process's command instead of starting it.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == --dry-run ]]; then dry_run=1; shift; fi
if [[ $# -lt 3 ]]; then
  echo "usage: $0 [--dry-run] NUM_PROCESSES CONFIG WORKDIR [extra dahjax.main flags]" >&2
  exit 2
fi
num_processes=$1 config=$2 workdir=$3
shift 3
port=${PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
log_dir=${LOG_DIR:-$workdir/logs}
devices=${DEVICES_PER_PROCESS:-1}
xla_flags="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$devices"
command_of() {  # The command of process $1.
  cmd=(env XLA_FLAGS="${xla_flags# }" JAX_PLATFORMS=cpu
    python -m dahjax.main --config "$config" --workdir "$workdir"
    --coordinator_address="127.0.0.1:$port" --num_processes="$num_processes"
    --process_id="$1")
}

if [[ $dry_run -eq 1 ]]; then
  for ((i = 0; i < num_processes; i++)); do
    command_of "$i"
    printf '%q ' "${cmd[@]}" "$@"; echo "> $log_dir/process_$i.log"
  done
  exit 0
fi
mkdir -p "$log_dir"
pids=()
for ((i = 0; i < num_processes; i++)); do
  command_of "$i"
  "${cmd[@]}" "$@" > "$log_dir/process_$i.log" 2>&1 &
  pids+=($!)
done

forward() { kill -s "$1" "${pids[@]}" 2>/dev/null || true; }
trap 'forward TERM' TERM
trap 'forward INT' INT

status=0
for pid in "${pids[@]}"; do
  while true; do
    # A trapped signal interrupts `wait` while the process still runs: wait again.
    if wait "$pid"; then rc=0; else rc=$?; fi
    kill -0 "$pid" 2>/dev/null || break
  done
  if [[ $rc -ne 0 && $status -eq 0 ]]; then
    status=$rc
  fi
done
echo "processes finished with status $status; logs in $log_dir" >&2
exit "$status"
