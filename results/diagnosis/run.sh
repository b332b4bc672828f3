#!/usr/bin/env bash
# What holds DAH back: four trainings of the same ResNet30+CBAM at 12 bits on a
# 10,000-image part of the CIFAR-10 training split (protocol dah_cifar10_10k: 1,000
# images per class, also the database; the 10,000 test images as queries), 3 epochs,
# evaluated after every epoch (mAP@ALL, precision@1000 and the classifier's test
# accuracy on all 10,000 queries).
#
#   bash results/diagnosis/run.sh <workdir root> [variant ...]
#
# CIFAR10_DIR (default ../shared/data/cifar10_jpeg) is the image folder
# (train/<class>/*.jpg, test/<class>/*.jpg).
#
#   dah        DAH as specified: cross-entropy + W1 + W2
#   ce_only    cross-entropy only, on the shrink-sigmoid layer
#   linear_ce  cross-entropy only, on an unconstrained layer of the same width
#   hash_only  W1 + W2, no cross-entropy
#
# Each run's eval/metrics.json, eval/codes.npz, eval/curve.jsonl and
# eval/learning_curve.png are copied to results/diagnosis/<variant>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:?usage: run.sh <workdir root> [variant ...]}
shift
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(dah ce_only linear_ce hash_only)
common=(--config configs/dah_cifar10.py --config.model.bits=12
        --config.data.data_dir="${CIFAR10_DIR:-../shared/data/cifar10_jpeg}"
        --config.data.protocol=dah_cifar10_10k --config.num_epochs=3
        --config.eval_every_steps=500 --config.checkpoint_every_steps=500
        --config.max_checkpoints_to_keep=10 --config.eval.curve_queries=10000)
for v in "${variants[@]}"; do
  case $v in
    dah) extra=() ;;
    ce_only) extra=(--config.loss.dah.phi1=0 --config.loss.dah.phi2=0) ;;
    linear_ce) extra=(--config.model.hash_layer=linear --config.loss.dah.phi1=0
                      --config.loss.dah.phi2=0) ;;
    hash_only) extra=(--config.loss.dah.ce_weight=0) ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  python -m dahjax.main "${common[@]}" "${extra[@]}" --workdir "$root/$v"
  mkdir -p "results/diagnosis/$v"
  cp "$root/$v"/eval/{metrics.json,codes.npz,curve.jsonl,learning_curve.png} \
     "results/diagnosis/$v/"
done
