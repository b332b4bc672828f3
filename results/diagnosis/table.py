"""Prints the diagnosis table of docs/results.md from results/diagnosis/<variant>/curve.jsonl.

python results/diagnosis/table.py
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = {
  'dah': ('(a) DAH as specified', 'ce + W1 + W2, shrink sigmoid'),
  'ce_only': ('(b) cross-entropy only', 'ce, shrink sigmoid'),
  'linear_ce': ('(c) unconstrained layer', 'ce, linear layer'),
  'hash_only': ('(d) no cross-entropy', 'W1 + W2, shrink sigmoid'),
}


def main():
  print(
    '| variant | loss | mAP@ALL / test accuracy, epoch 1 | epoch 2 | epoch 3 | '
    'training ce, epoch 3 | bit balance, epoch 3 |'
  )
  print('|---|---|---|---|---|---|---|')
  for name, (label, loss) in VARIANTS.items():
    path = os.path.join(HERE, name, 'curve.jsonl')
    if not os.path.exists(path):
      print(f'| {label} | {loss} | not run yet | | | | |')
      continue
    with open(path) as f:
      points = {p['step']: p for p in map(json.loads, filter(str.strip, f))}
    points = [points[s] for s in sorted(points)]
    cells = [f'{p["map"]:.4f} / {p["accuracy"]:.4f}' for p in points]
    cells += ['-'] * (3 - len(cells))
    last = points[-1]
    ce = f'{last["train_ce"]:.3f}' if 'train_ce' in last else '-'
    balance = '-' if last['bit_balance'] is None else f'{last["bit_balance"]:.2f}'
    print(f'| {label} | {loss} | ' + ' | '.join(cells[:3]) + f' | {ce} | {balance} |')


if __name__ == '__main__':
  main()
