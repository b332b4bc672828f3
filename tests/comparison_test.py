"""The comparison trains each missing (method, bits) run once and tables them."""

import json
import os

import pytest

from dahjax import compare
from dahjax import comparison


def test_comparison_trains_missing_runs_keeps_finished_ones(tiny_config, tmp_path):
  tiny_config.model_name = 'dsh_cnn'
  tiny_config.num_train_steps = 2
  root = str(tmp_path / 'runs')
  workdirs = comparison.run_all(tiny_config, root, ['dsh', 'hashnet'], [8])
  assert workdirs == [os.path.join(root, 'dsh_8'), os.path.join(root, 'hashnet_8')]
  table = compare.markdown_table(compare.load_results(workdirs))
  assert '| DSH | dah_cifar10 |' in table and '| HashNet | dah_cifar10 |' in table
  metrics = os.path.join(workdirs[0], compare.METRICS_FILE)
  with open(metrics) as f:
    saved = json.load(f)
  # DSH's CNN has no attention to record (config.model.attention is DAH's option).
  assert saved['model'] == 'dsh_cnn' and saved['attention'] is None
  before = os.path.getmtime(metrics)
  # Again, with one run removed: only that one trains.
  removed = os.path.join(workdirs[1], compare.METRICS_FILE)
  os.remove(removed)
  comparison.run_all(tiny_config, root, ['dsh', 'hashnet'], [8])
  assert os.path.getmtime(metrics) == before and os.path.exists(removed)


def test_each_loss_gets_the_head_it_needs():
  assert comparison.head_settings('dsh_cnn', 'dah') == dict(
    hash_activation='shrink_sigmoid', classifier_reads='codes'
  )
  assert comparison.head_settings('dah_resnet30', 'dsh') == dict(hash_layer='linear')
  # DPFAH's ResNet18 gives every method its head: the comparison runs on it as is.
  assert comparison.head_settings('dpfah_resnet18', 'greedyhash') == dict(
    hash_activation='none', classifier_reads='sign_codes'
  )
  assert comparison.head_settings('dpfah_resnet18', 'dah') == dict(
    hash_activation='shrink_sigmoid', classifier_reads='codes'
  )
  assert comparison.head_settings('dah_resnet30', 'greedyhash') == dict(
    hash_layer='linear', classifier_input='sign_codes'
  )
  # A backbone the comparison does not know gives the methods reading u their outputs,
  # and refuses those needing a head of their own.
  assert comparison.head_settings('new_net', 'dsh') == {}
  with pytest.raises(
    ValueError,
    match='GreedyHash needs a head.*compare it on dah_resnet30, dpfah_resnet18, dsh_cnn',
  ):
    comparison.head_settings('new_net', 'greedyhash')
