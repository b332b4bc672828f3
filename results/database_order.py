"""How the order of the database moves the index-order mAP, and not the tie-aware one.

  python results/database_order.py results/diagnosis/*/codes.npz

For each eval/codes.npz: mAP@ALL (ties in Hamming distance broken by database position,
what the papers report) and the tie-aware mAP, with the database in its stored order and
in three seeded shuffles of it. Runs made before the splits were stored shuffled keep
their database in class order.
"""

import sys

import numpy as np

from dahjax import retrieval


def main(paths):
  print('| codes | database order | mAP@ALL | tie-aware mAP |')
  print('|---|---|---|---|')
  for path in paths:
    codes = np.load(path)
    q, ql = codes['query_codes'], codes['query_labels']
    d, dl = codes['database_codes'], codes['database_labels']
    orders = [('stored', np.arange(len(d)))] + [
      (f'shuffled (seed {s})', np.random.default_rng(s).permutation(len(d)))
      for s in range(3)
    ]
    for name, order in orders:
      m = retrieval.retrieval_metrics(q, d[order], ql, dl[order], precision_at=None)
      print(f'| {path} | {name} | {m["map"]:.4f} | {m["map_tie_aware"]:.4f} |')


if __name__ == '__main__':
  main(sys.argv[1:])
