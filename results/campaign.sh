#!/usr/bin/env bash
# The reproduction campaign of docs/results.md as one command: every run in order, each
# resumed from its checkpoint when it was interrupted, each finished run's final files
# copied into results/<run>/. Run it again after any stop; finished runs are kept.
#
#   bash results/campaign.sh <workdir root> [run ...]      # default: every run, in order
#   bash results/campaign.sh <workdir root> collect        # copy curves of unfinished runs
#
# CIFAR10_DIR (default ../shared/data/cifar10_jpeg) is the image folder. Each training
# runs as one process held to the cores in CORES (default: all of them, e.g. CORES=0,1).
# SPLIT=1 runs it as one process per core instead, each pinned to its core and holding
# its share of the global batch, joined on a local port (PORT, default a free one): as
# fast for DPFAH, five times slower for DAH on a 2-core CPU (docs/results.md). The
# comparison's runs are small and go one per core side by side. Two lanes side by side,
# one core each, train about 14% more in total than one lane on both cores:
#
#   CORES=0 bash results/campaign.sh R comparison_12 comparison_48 &
#   CORES=1 bash results/campaign.sh R dah_cifar10_12 &
#
# DRY_RUN=1 prints each command instead of running it (and copies nothing).
#
# Runs, in this order:
#   dpfah_cifar10_32px_48   DPFAH from scratch at 32 px, 48 bits, DPFAH protocol, 60 epochs
#   comparison_12           every method on DSH's CNN and protocol, 12 bits, 2,000 steps
#   comparison_48           the same at 48 bits
#   dah_cifar10_12          DAH, 12 bits, paper settings, to the plateau (3 points) or 60 epochs
#   dsh_cifar10_12          DSH at 12 bits under its paper's schedule, 150,000 steps; it
#                           goes on from dsh_cifar10_12_release's checkpoint at step 20,000
#                           where that exists (the two schedules agree up to there)
#   dsh_cifar10_48          DSH at 48 bits, fine-tuned from dsh_cifar10_12
#   dsh_cifar10_12_release  DSH with the authors' released solver, 70,000 steps
#   dsh_cifar10_48_release  DSH at 48 bits, fine-tuned from dsh_cifar10_12_release
#   dah_cifar10_48          DAH, 48 bits, as dah_cifar10_12
#   nonea_dah_cifar10_12    DAH without CBAM, 12 bits, as dah_cifar10_12
#
# A run counts as finished when results/<run>/metrics.json exists (for the comparison,
# results/comparison/<method>_<bits>/metrics.json); on a new machine those are copied into
# the comparison's workdirs so that they are not trained again.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:?usage: campaign.sh <workdir root> [run ...]}
root=$(realpath -m "$root")
shift
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(dpfah_cifar10_32px_48 comparison_12 comparison_48 dah_cifar10_12
                              dsh_cifar10_12 dsh_cifar10_48 dsh_cifar10_12_release
                              dsh_cifar10_48_release
                              dah_cifar10_48 nonea_dah_cifar10_12)
data=${CIFAR10_DIR:-../shared/data/cifar10_jpeg}
read -r -a cores <<< "${CORES:-$(seq -s ' ' 0 $(($(nproc) - 1)))}"
cores=(${cores[@]//,/ })
processes=1
[ "${SPLIT:-0}" = 1 ] && processes=${#cores[@]}
mkdir -p "$root"

dry=${DRY_RUN:-0}
# run CMD...: CMD, or with DRY_RUN=1 the command line.
run() { if [ "$dry" = 1 ]; then echo "$*"; else "$@"; fi; }

free_port() {
  python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# train WORKDIR CONFIG [flags ...]: one run on the cores, in `processes` processes.
train() {
  local workdir=$1 config=$2
  shift 2
  local common=(--config "$config" --workdir "$workdir" --config.data.data_dir="$data" "$@")
  if [ "$processes" -eq 1 ]; then
    run taskset -c "$(IFS=,; echo "${cores[*]}")" python -m dahjax.main "${common[@]}"
    return
  fi
  local port=${PORT:-$(free_port)} pids=() i
  mkdir -p "$workdir/logs"
  for ((i = 0; i < processes; i++)); do
    run env JAX_PLATFORMS=cpu taskset -c "${cores[i]}" python -m dahjax.main "${common[@]}" \
      --coordinator_address="127.0.0.1:$port" --num_processes="$processes" --process_id="$i" \
      > "$workdir/logs/process_$i.log" 2>&1 &
    pids+=($!)
  done
  if [ "$dry" = 1 ]; then wait; cat "$workdir"/logs/process_*.log; return; fi
  trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM INT
  local status=0
  for i in "${pids[@]}"; do wait "$i" || status=$?; done
  trap - TERM INT
  return "$status"
}

# keep RUN: the final files of workdir RUN into results/RUN/.
keep() {
  [ "$dry" = 1 ] && return
  mkdir -p "results/$1"
  cp "$root/$1"/eval/{metrics.json,codes.npz,curve.jsonl,learning_curve.png} "results/$1/"
}

finished() { [ -f "results/$1/metrics.json" ]; }

# The campaign's learning-curve settings of a run with E steps an epoch.
curve_flags() {
  echo --config.eval_every_steps="$1" --config.checkpoint_every_steps="$1" \
    --config.max_checkpoints_to_keep=100
}

# DSH's runs: a curve point every 10 epochs of 250 steps (1,000 curve queries), a
# checkpoint every epoch, all kept (150,000 steps at the most: 600).
dsh_flags() {
  echo --config.eval_every_steps=2500 --config.eval.curve_queries=1000 \
    --config.checkpoint_every_steps=250 --config.max_checkpoints_to_keep=600
}

dah_run() {  # dah_run RUN BITS [flags ...]
  local run=$1 bits=$2
  shift 2
  finished "$run" && return
  # One point and one checkpoint per epoch of 2,500 steps.
  train "$root/$run" configs/dah_cifar10.py --config.model.bits="$bits" \
    --config.num_epochs=60 --config.plateau.evaluations=3 --config.data.num_threads=2 \
    $(curve_flags 2500) "$@"
  keep "$run"
}

comparison() {  # comparison BITS: the methods split over the cores, then the table.
  local bits=$1 methods m i
  methods=(dsh dpsh hashnet dah dpfah csq greedyhash dsdh dhn dbdh dfh idhn lcdsh)
  # 2,000 steps, a checkpoint every epoch of 250 steps, all 8 kept.
  local flags=(--config configs/dsh_cifar10.py --root "$root/comparison"
    --config.data.data_dir="$data" --config.num_train_steps=2000 --bits "$bits"
    --config.checkpoint_every_steps=250 --config.max_checkpoints_to_keep=8
    --config.optimizer.name=adam --config.optimizer.learning_rate=1e-4
    --config.optimizer.weight_decay=0 --config.optimizer.lr_schedule=constant)
  for m in "${methods[@]}"; do  # Finished on another machine: kept, not trained again.
    local kept="results/comparison/${m}_$bits" workdir="$root/comparison/${m}_$bits"
    if [ -f "$kept/metrics.json" ] && [ ! -f "$workdir/eval/metrics.json" ]; then
      run mkdir -p "$workdir/eval"
      run cp "$kept"/{metrics.json,codes.npz} "$workdir/eval/"
    fi
  done
  local pids=() status=0
  for ((i = 0; i < ${#cores[@]}; i++)); do
    local mine=()
    for ((j = i; j < ${#methods[@]}; j += ${#cores[@]})); do mine+=("${methods[j]}"); done
    [ ${#mine[@]} -gt 0 ] || continue
    run taskset -c "${cores[i]}" python -m dahjax.comparison "${flags[@]}" \
      --methods "$(IFS=,; echo "${mine[*]}")" > "$root/comparison_${bits}_$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || status=$?; done
  if [ "$dry" = 1 ]; then cat "$root"/comparison_"$bits"_*.log; return; fi
  for m in "${methods[@]}"; do  # Every finished run, also when another failed.
    local workdir="$root/comparison/${m}_$bits"
    if [ -f "$workdir/eval/metrics.json" ]; then
      mkdir -p "results/comparison/${m}_$bits"
      cp "$workdir"/eval/{metrics.json,codes.npz} "results/comparison/${m}_$bits/"
    fi
  done
  [ "$status" -eq 0 ] || return "$status"
  python -m dahjax.compare results/comparison/*_"$bits" --paper --budget
}

# seed_from SOURCE RUN STEP: a new workdir RUN that goes on from SOURCE's checkpoint at
# STEP, with SOURCE's record of the run and its curve up to STEP. Nothing when RUN
# already has a workdir or SOURCE has no such checkpoint (RUN then trains from step 0).
seed_from() {
  local source=$root/$1 target=$root/$2 step=$3
  [ -e "$target" ] || [ ! -d "$source/checkpoints/$step" ] && return
  run mkdir -p "$target/checkpoints" "$target/eval"
  run cp -r "$source/checkpoints/$step" "$target/checkpoints/"
  run cp "$source/run_config.json" "$source/splits.json" "$target/"
  [ -f "$source/eval/curve.jsonl" ] || return 0
  local keep_rows='import json, sys; src, step, dst = sys.argv[1:]; rows = open(src).readlines()
open(dst, "w").writelines(r for r in rows if json.loads(r)["step"] <= int(step))'
  run python -c "$keep_rows" "$source/eval/curve.jsonl" "$step" "$target/eval/curve.jsonl"
}

dsh_finetune() {  # dsh_finetune RUN SOURCE: 48 bits fine-tuned from the 12-bit run SOURCE.
  local run=$1 source=$2
  finished "$run" && return
  [ -d "$root/$source/checkpoints" ] || [ "$dry" = 1 ] || {
    if finished "$source"; then
      echo "$run fine-tunes $root/$source, whose checkpoints are not here (results/$source" \
        "holds its results only): move results/$source aside and run $source again" >&2
    else
      echo "$run fine-tunes $root/$source: run $source first" >&2
    fi
    exit 2
  }
  train "$root/$run" configs/dsh_cifar10_48.py \
    --config.model.init_from="$root/$source" $(dsh_flags)
  keep "$run"
}

collect() {  # The curves so far of unfinished runs, into results/<run>/.
  local w run
  for w in "$root"/*/eval/curve.jsonl; do
    [ -f "$w" ] || continue
    run=$(basename "$(dirname "$(dirname "$w")")")
    finished "$run" && continue
    mkdir -p "results/$run"
    cp "$w" "results/$run/"
    cp "$(dirname "$w")/learning_curve.png" "results/$run/" 2>/dev/null || true
  done
}

for run in "${runs[@]}"; do
  echo "== $run ($(date -u +%FT%TZ))"
  case $run in
    dpfah_cifar10_32px_48)
      # One checkpoint per epoch of 39 steps, a curve point every 5 epochs.
      finished "$run" && continue
      train "$root/$run" configs/dpfah_cifar10_32px.py --config.model.bits=48 \
        --config.checkpoint_every_steps=39 --config.eval_every_steps=195 \
        --config.max_checkpoints_to_keep=100
      keep "$run" ;;
    dah_cifar10_12) dah_run "$run" 12 ;;
    dah_cifar10_48) dah_run "$run" 48 ;;
    nonea_dah_cifar10_12) dah_run "$run" 12 --config.model.attention=none ;;
    comparison_12) comparison 12 ;;
    comparison_48) comparison 48 ;;
    dsh_cifar10_12)
      finished "$run" && continue
      seed_from dsh_cifar10_12_release "$run" 20000
      train "$root/$run" configs/dsh_cifar10.py --config.model.bits=12 \
        $(dsh_flags)
      keep "$run" ;;
    dsh_cifar10_48) dsh_finetune "$run" dsh_cifar10_12 ;;
    dsh_cifar10_12_release)
      finished "$run" && continue
      train "$root/$run" configs/dsh_cifar10_release.py --config.model.bits=12 \
        $(dsh_flags)
      keep "$run" ;;
    dsh_cifar10_48_release) dsh_finetune "$run" dsh_cifar10_12_release ;;
    collect) collect ;;
    *) echo "unknown run $run; see the list at the top of $0" >&2; exit 2 ;;
  esac
done
