"""Every committed result recomputes from its committed codes: results/<run>/codes.npz gives
the mAP, precision and bit balance its metrics.json reports."""

import glob
import json
import os

import numpy as np
import pytest

from dahjax import losses
from dahjax import retrieval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = sorted(
  os.path.dirname(p)
  for p in glob.glob(os.path.join(ROOT, 'results', '**', 'metrics.json'), recursive=True)
)


def test_results_are_found():
  assert RUNS, 'no results/<run>/metrics.json'


@pytest.mark.parametrize('run', RUNS, ids=lambda r: os.path.relpath(r, ROOT))
def test_metrics_recompute_from_codes(run):
  with open(os.path.join(run, 'metrics.json')) as f:
    metrics = json.load(f)
  codes = np.load(os.path.join(run, 'codes.npz'))
  topk = (
    None
    if metrics['map_topk'] == 'ALL'
    else min(metrics['map_topk'], len(codes['database_codes']))
  )
  again = retrieval.retrieval_metrics(
    codes['query_codes'],
    codes['database_codes'],
    codes['query_labels'],
    codes['database_labels'],
    topk=topk,
    precision_at=1000,
  )
  assert again['map'] == pytest.approx(metrics['map'], abs=1e-9)
  assert again['precision_at_1000'] == pytest.approx(metrics['precision_at_1000'], abs=1e-9)
  balance = retrieval.bit_balance_summary(codes['database_codes'])['bit_balance']
  assert balance == pytest.approx(metrics['bit_balance'], abs=1e-9)
  assert codes['query_codes'].shape == (metrics['num_queries'], metrics['bits'])


@pytest.mark.parametrize('run', RUNS, ids=lambda r: os.path.relpath(r, ROOT))
def test_accuracy_only_where_the_loss_trains_a_classifier(run):
  with open(os.path.join(run, 'metrics.json')) as f:
    metrics = json.load(f)
  loss = {t: n for n, t in losses.TITLES.items()}[metrics['method'].removeprefix('NoneA-')]
  assert (metrics['accuracy'] is not None) == losses.trains_classifier(loss)
