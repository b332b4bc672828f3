#!/usr/bin/env bash
# Choosing the settings of the from-scratch DPFAH variant (configs/dpfah_cifar10_32px.py,
# 48 bits) without the queries: 4 epochs each on dpfah_cifar10_val (400 training images
# per class of dpfah_cifar10's training set, which are also the database; its other 100
# per class are the queries), evaluated every epoch. On one CPU core (taskset, XLA's
# default threading) a step of batch 128 takes about 9 s, so 4 epochs (124 steps) with
# their evaluations are about half an hour per variant: enough
# to tell a variant whose L1 stays at ln 2 (every inner product near 0) from one that
# learns.
#
#   bash results/dpfah_search/run.sh <workdir root> [variant ...]
#
# CIFAR10_DIR (default ../shared/data/cifar10_jpeg) is the image folder.
#
#   base       RMSProp 1e-4, zeta 0.1 (the config's settings before this search)
#   adam       Adam 1e-3
#   zeta1      classification weight zeta = 1
#   warmup     the hash terms' weight ramps up over the first 2 epochs (62 steps)
#   clip       gradients clipped to global norm 1
#   hashbn     the hash layer batch-normalised (model.hash_norm=batchnorm; init_codes.py
#              shows why: at initialisation every image gets nearly the same code)
#   adam_zeta1         Adam 1e-3 and zeta = 1 (the classification term trains the
#                      backbone; at zeta 0.1 L3 hardly moved from the class prior)
#   adam_zeta1_warmup  adam_zeta1 with the hash terms' warm-up over 2 epochs
#   pull1, pull10      adam_zeta1_warmup with DPSH's pull of u towards its signs
#                      (loss.dpfah.sign_pull = 1 or 10): L2 is zero inside its margin,
#                      so nothing else moves the codes away from 0, L1's saddle
#
# Each run's eval/metrics.json, eval/codes.npz, eval/curve.jsonl and
# eval/learning_curve.png are copied to results/dpfah_search/<variant>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:?usage: run.sh <workdir root> [variant ...]}
shift
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(base adam zeta1 warmup clip hashbn)
common=(--config configs/dpfah_cifar10_32px.py --config.model.bits=48
        --config.data.data_dir="${CIFAR10_DIR:-../shared/data/cifar10_jpeg}"
        --config.data.protocol=dpfah_cifar10_val --config.num_epochs=4
        --config.eval_every_steps=31 --config.checkpoint_every_steps=31
        --config.max_checkpoints_to_keep=20 --config.eval.curve_queries=1000
        # The search's base: the config's settings before the search chose its own.
        --config.optimizer.name=rmsprop --config.optimizer.learning_rate=1e-4
        --config.loss.dpfah.zeta=0.1 --config.loss.hash_warmup_steps=0
        --config.loss.dpfah.sign_pull=0.0)
adam=(--config.optimizer.name=adam --config.optimizer.learning_rate=1e-3)
for v in "${variants[@]}"; do
  case $v in
    base) extra=() ;;
    adam) extra=("${adam[@]}") ;;
    zeta1) extra=(--config.loss.dpfah.zeta=1.0) ;;
    warmup) extra=(--config.loss.hash_warmup_steps=62) ;;
    clip) extra=(--config.optimizer.grad_clip_norm=1.0) ;;
    hashbn) extra=(--config.model.hash_norm=batchnorm) ;;
    adam_zeta1) extra=("${adam[@]}" --config.loss.dpfah.zeta=1.0) ;;
    adam_zeta1_warmup)
      extra=("${adam[@]}" --config.loss.dpfah.zeta=1.0 --config.loss.hash_warmup_steps=62) ;;
    pull1 | pull10)
      extra=("${adam[@]}" --config.loss.dpfah.zeta=1.0 --config.loss.hash_warmup_steps=62
             --config.loss.dpfah.sign_pull="${v#pull}") ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  python -m dahjax.main "${common[@]}" "${extra[@]}" --workdir "$root/$v"
  mkdir -p "results/dpfah_search/$v"
  cp "$root/$v"/eval/{metrics.json,codes.npz,curve.jsonl,learning_curve.png} \
    "results/dpfah_search/$v/"
done
