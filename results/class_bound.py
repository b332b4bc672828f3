"""How far a run's mAP is set by how often a query's code lands in its own class's cluster.

  python results/class_bound.py results/dah_cifar10_12/codes.npz ...

For each eval/codes.npz of a single-label dataset: each class's centre code (the majority
bit of its database codes); the share of database codes and of query codes nearest (Hamming)
to their own class's centre; mAP@ALL over all queries, and over the queries nearest to their
own class's centre and the others apart. When the database codes sit in tight class clusters,
a query near its own centre ranks its class first (AP near 1) and one near another centre
ranks that class first (AP near 1 / number of classes), so mAP is about the share of queries
nearest their own centre, however good the database clusters are.
"""

import sys

import numpy as np

from dahjax import retrieval


def _nearest_centre(codes, centres):
  codes, centres = (np.asarray(retrieval.pack_codes(c)) for c in (codes, centres))
  return retrieval.hamming_distance(codes[:, None], centres[None]).argmin(-1)


def main(paths):
  print(
    '| codes | database nearest own centre | queries nearest own centre | mAP@ALL '
    '| mAP, those queries | mAP, the other queries |'
  )
  print('|---|---|---|---|---|---|')
  for path in paths:
    codes = np.load(path)
    q, ql = codes['query_codes'], codes['query_labels']
    d, dl = codes['database_codes'], codes['database_labels']
    if (ql.sum(-1) != 1).any() or (dl.sum(-1) != 1).any():
      sys.exit(
        f'{path}: labels are not single-label; this analysis needs one class per image.'
      )
    q_class, d_class = ql.argmax(-1), dl.argmax(-1)
    classes = np.arange(ql.shape[1])
    centres = np.stack([d[d_class == c].mean(0) >= 0.5 for c in classes]).astype(d.dtype)
    d_own = _nearest_centre(d, centres) == d_class
    q_own = _nearest_centre(q, centres) == q_class

    def map_of(mask):
      if not mask.any():
        return float('nan')
      return retrieval.mean_average_precision(q[mask], d, ql[mask], dl)

    # mAP is the mean AP over queries, so the two groups' mAPs weighted by their sizes give
    # the whole's.
    own_map, other_map = map_of(q_own), map_of(~q_own)
    share = q_own.mean()
    all_map = np.nansum([share * own_map, (1 - share) * other_map])
    print(
      f'| {path} | {d_own.mean():.4f} | {share:.4f} | {all_map:.4f} '
      f'| {own_map:.4f} | {other_map:.4f} |'
    )


if __name__ == '__main__':
  main(sys.argv[1:])
