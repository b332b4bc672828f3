"""Tests of evaluation: chunked encoding, progress lines, plots and metrics.json."""

import json
import os

import jax
import ml_collections
import numpy as np
from PIL import Image

from dahjax import compare
from dahjax import encode
from dahjax import evaluate
from dahjax import models
from dahjax import parallel
from dahjax import plots
from dahjax import progress as progress_lib
from dahjax import retrieval
from dahjax import train
from dahjax import validation
from tests.conftest import random_images


def test_chunked_encoder_equals_one_pass():
  model = models.create_model('dah_resnet30', bits=8, num_classes=3)
  images = random_images(10)
  variables = jax.jit(model.init)(jax.random.key(0), images[:1])
  mesh = parallel.create_mesh()
  whole = encode.make_encoder(model, mesh, None)(variables, images)
  # 10 rows in chunks of 4: two full chunks and one padded.
  chunked = encode.make_encoder(model, mesh, 4)(variables, images)
  assert chunked.shape == (10, 8) and chunked.dtype == np.uint8
  np.testing.assert_array_equal(chunked, whole)
  hashes = model.apply(variables, images)['hash']
  np.testing.assert_array_equal(whole, np.asarray(hashes) > 0.5)


def test_encode_chunk_size():
  assert encode.encode_chunk_size(64) == 64
  assert encode.encode_chunk_size(0) == (128 if jax.default_backend() == 'cpu' else None)


def test_encode_progress_lines_are_throttled_and_estimate_the_rest():
  now = [100.0]
  progress = progress_lib.EncodeProgress(
    'database', 50_000, interval=5.0, clock=lambda: now[0]
  )
  assert progress.update(500) is None  # The first batch (it compiles) sets the start.
  now[0] += 2.0
  assert progress.update(1_000) is None  # Within the interval: quiet.
  now[0] += 38.0
  line = progress.update(12_500)  # 12,000 images in 40 s: 300 images/s.
  assert line == 'Encoding database: 12,500/50,000 (25%), 300 images/s, ETA 00:02:05'
  now[0] += 1.0
  assert progress.update(12_800) is None
  now[0] += 200.0
  assert progress.update(50_000) is None  # Done: finish() says so.
  assert progress.finish(50_000) == (
    'Encoded database: 50,000 images in 00:04:01 '
    '(205 images/s after the first batch, which '
    'compiles)'
  )


def test_encode_progress_of_a_single_batch():
  now = [0.0]
  progress = progress_lib.EncodeProgress('queries', 8, clock=lambda: now[0])
  now[0] += 3.0
  progress.update(8)
  assert progress.finish(8) == 'Encoded queries: 8 images in 00:00:03'


def test_format_duration_keeps_hours_past_a_day():
  assert progress_lib.format_duration(3725.4) == '01:02:05'
  assert progress_lib.format_duration(90_061) == '25:01:01'


def test_method_names():
  assert evaluate.method_name('dah_resnet30', 'cbam') == 'DAH'
  assert evaluate.method_name('dah_resnet30', 'none') == 'NoneA-DAH'
  assert evaluate.method_name('dpfah_resnet18', 'stem') == 'DPFAH'
  full = {'alpha': 0.5, 'delta': 1.1, 'eta': 10.0, 'zeta': 0.1}
  l1_only = {**full, 'eta': 0.0, 'zeta': 0.0}
  assert (
    evaluate.method_name('dpfah_resnet18', 'stem', loss_name='dpfah', loss=full) == 'DPFAH'
  )
  assert evaluate.method_name(
    'dpfah_resnet18', 'none', loss_name='dpfah', loss=l1_only
  ).startswith('DFAH-1')
  assert evaluate.method_name(
    'dpfah_resnet18', 'stem', loss_name='dpfah', loss=l1_only
  ).startswith('DFAH-2')
  assert (
    evaluate.method_name('dpfah_resnet18', 'every_block', loss_name='dpfah', loss=l1_only)
    == 'DPFAH (PFA in every block), L1 only'
  )
  # DAH's loss has no eta or zeta: its names do not depend on the loss.
  assert (
    evaluate.method_name('dah_resnet30', 'cbam', loss_name='dah', loss={'phi1': 1.0})
    == 'DAH'
  )
  assert evaluate.method_name('my_net', None) == 'my_net'
  assert evaluate.method_name('my_net', 'se') == 'my_net (se)'


def _synthetic_eval(bits=8, n_query=12, n_db=40, seed=0):
  """Codes that cluster by class, their labels and retrieval_metrics with curves."""
  rng = np.random.default_rng(seed)
  q_labels = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n_query)]
  db_labels = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n_db)]
  centres = rng.integers(0, 2, (3, bits))
  noisy = lambda labels: (
    centres[labels.argmax(1)] ^ (rng.random((len(labels), bits)) < 0.2)
  ).astype(np.uint8)
  q_codes, db_codes = noisy(q_labels), noisy(db_labels)
  metrics = retrieval.retrieval_metrics(
    q_codes, db_codes, q_labels, db_labels, precision_at=5, curves=True
  )
  metrics.update(method='DAH', bits=bits, map_topk='ALL')
  return metrics, q_codes, db_codes, q_labels, db_labels


def test_write_plots_skips_only_the_grid_when_images_cannot_load(tmp_path, caplog):
  metrics, *arrays = _synthetic_eval()

  def no_images(i):
    raise FileNotFoundError(f'image {i} is gone')

  (tmp_path / 'retrieval_grid.png').write_bytes(b'an earlier evaluation')
  with caplog.at_level('WARNING'):
    written = plots.write_plots(
      str(tmp_path), metrics, *arrays, load_query=no_images, load_result=no_images
    )
  assert sorted(os.listdir(tmp_path)) == [
    'pr_curve.png',
    'precision_at_n.png',
    'precision_radius.png',
  ]
  assert len(written) == 3
  assert 'No retrieval grid' in caplog.text and 'image' in caplog.text


def test_end_of_training_evaluation_writes_curves_and_plots(tiny_config, tmp_path):
  # NoneA-DAH: the same path as DAH at a fraction of the compile time.
  tiny_config.model.attention = 'none'
  tiny_config.num_train_steps = 1
  workdir = str(tmp_path / 'run')
  validation.validate(tiny_config, workdir)
  metrics = train.train_and_evaluate(tiny_config, workdir)  # Ends in evaluate.evaluate.
  eval_dir = os.path.join(workdir, 'eval')
  assert sorted(f for f in os.listdir(eval_dir) if f.endswith('.png')) == [
    'pr_curve.png',
    'precision_at_n.png',
    'precision_radius.png',
    'retrieval_grid.png',
  ]
  for f in os.listdir(eval_dir):
    assert not f.endswith('.tmp'), f  # Every file was renamed into place.
  for name in ('pr_curve', 'retrieval_grid'):
    with Image.open(os.path.join(eval_dir, f'{name}.png')) as image:
      assert image.format == 'PNG' and min(image.size) > 100
  saved = json.load(open(os.path.join(eval_dir, 'metrics.json')))
  assert {
    'map',
    'precision_at_5',
    'precision_radius_2',
    'bit_balance',
    'bits',
    'protocol',
    'map_topk',
    'num_queries',
    'num_database',
    'step',
  } <= set(saved)
  assert saved['method'] == 'NoneA-DAH' and saved['model'] == 'dah_resnet30'
  assert saved['attention'] == 'none' and metrics['method'] == 'NoneA-DAH'
  assert saved['radius_curve']['radius'] == list(range(9))
  assert len(saved['radius_curve']['precision']) == len(saved['radius_curve']['recall'])
  # The database has 24 images, so the precision@N curve stops at N = 24.
  assert saved['precision_at_n']['n'] == [1, 5, 10, 20, 24]
  assert saved['precision_at_n']['precision'][1] == saved['precision_at_5']
  # The metrics log keeps scalars only.
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    last = json.loads(f.readlines()[-1])
  assert 'eval_map' in last and 'eval_radius_curve' not in last

  table = compare.markdown_table(compare.load_results([workdir]))
  assert f'| NoneA-DAH | dah_cifar10 | {saved["map"]:.4f} / ' in table


def test_accuracy_only_of_a_classifier_the_loss_trains():
  labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
  predictions = np.array([0, 1, 0, 2])
  config = ml_collections.ConfigDict({'loss_name': 'dah'})
  assert evaluate.classifier_accuracy(config, predictions, labels) == 0.75
  config.loss_name = 'dsh'  # DSH's loss never reads the logits: chance, left out.
  assert evaluate.classifier_accuracy(config, predictions, labels) is None
