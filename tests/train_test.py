"""End-to-end tests: train, checkpoint, resume, evaluate; bad configs fail early."""

import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax import checkpoints
from dahjax import evaluate
from dahjax import parallel
from dahjax import retrieval
from dahjax import state as state_lib
from dahjax import train
from dahjax import validation

METRIC_KEYS = {
  'map',
  'precision_at_5',
  'precision_radius_2',
  'bit_balance',
  'encode_us_per_image',
  'bits',
  'protocol',
  'num_queries',
  'num_database',
}


def read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_train_resume_and_evaluate(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  validation.validate(tiny_config, workdir)
  metrics = train.train_and_evaluate(tiny_config, workdir)
  assert METRIC_KEYS <= set(metrics)
  assert metrics['bits'] == 8 and metrics['num_queries'] == 12
  assert metrics['num_database'] == 24 and 0.0 <= metrics['map'] <= 1.0
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '3']
  saved = json.load(open(os.path.join(workdir, 'eval', 'metrics.json')))
  assert saved['map'] == metrics['map']
  codes = np.load(os.path.join(workdir, 'eval', 'codes.npz'))
  assert codes['query_codes'].shape == (12, 8) and codes['query_codes'].dtype == np.uint8
  assert codes['database_labels'].shape == (24, 3)
  assert set(np.unique(codes['database_codes'])) <= {0, 1}
  train_lines = [
    r for r in read_jsonl(os.path.join(workdir, 'metrics.jsonl')) if 'train_loss' in r
  ]
  assert [r['step'] for r in train_lines] == [1, 2, 3]
  assert os.listdir(os.path.join(workdir, 'tensorboard'))[0].startswith('events.out')
  assert all(np.isfinite(r['train_loss']) for r in train_lines)
  # The budget: epochs, training time and hardware, as the final checkpoint recorded them.
  steps_per_epoch = 24 // tiny_config.batch_size
  assert saved['epochs'] == pytest.approx(3 / steps_per_epoch)
  assert 0 < saved['train_seconds'] < 900 and re.search(r', \d+ cores?$', saved['hardware'])
  assert saved['evaluated_on'].startswith('20')

  # A restart with a longer schedule resumes at step 3 instead of starting over, and
  # adds its training time to the time the checkpoint recorded.
  tiny_config.num_train_steps = 5
  resumed = train.train_and_evaluate(tiny_config, workdir)
  assert resumed['epochs'] == pytest.approx(5 / steps_per_epoch)
  assert resumed['train_seconds'] > saved['train_seconds']
  steps = [
    r['step']
    for r in read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
    if 'train_loss' in r
  ]
  assert steps == [1, 2, 3, 4, 5]
  # config.json holds the whole config of the latest start.
  full = json.load(open(os.path.join(workdir, 'config.json')))
  assert full == json.loads(json.dumps(tiny_config.to_dict()))
  assert full['num_train_steps'] == 5 and full['optimizer']['learning_rate'] == 1e-3

  # Evaluating the checkpoint alone reproduces the metrics of the end of training.
  again = evaluate.evaluate(tiny_config, workdir)
  final = json.load(open(os.path.join(workdir, 'eval', 'metrics.json')))
  assert again['map'] == final['map'] and again['step'] == 5
  older = evaluate.evaluate(tiny_config, workdir, checkpoint_step=4)
  assert older['step'] == 4


def test_train_clock_adds_the_resumed_time_and_leaves_out_evaluations():
  now = [100.0]
  clock = train.TrainClock(50.0, clock=lambda: now[0])
  now[0] = 130.0
  clock.exclude(10.0)  # A learning-curve point.
  assert clock.seconds() == 50.0 + 30.0 - 10.0
  # Resumed from a checkpoint that recorded no time: the run's time is unknown.
  assert train.TrainClock(None, clock=lambda: now[0]).seconds() is None


def test_eval_without_checkpoint_says_how_to_train(tiny_config, tmp_path):
  with pytest.raises(FileNotFoundError, match='No checkpoint.*dahjax.main'):
    evaluate.evaluate(tiny_config, str(tmp_path))


def train_on_a_fixed_batch(config, steps, metrics_out=None):
  """(losses, final state) of `steps` train steps on one fixed batch of 6 random images;
  each step's metrics are appended to `metrics_out` when given."""
  rng = np.random.default_rng(0)
  batch = {
    'image': rng.random((6, 32, 32, 3), dtype=np.float32),
    'label': np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]],
  }
  mesh = parallel.create_mesh()
  model = state_lib.create_model(config)
  state = state_lib.create_train_state(jax.random.key(0), config, model)
  state = jax.device_put(state, parallel.replicated(mesh))
  step = train.make_train_step(config)
  losses = []
  for _ in range(steps):
    state, metrics = step(state, parallel.global_batch(batch, mesh))
    losses.append(float(metrics['loss']))
    if metrics_out is not None:
      metrics_out.append({k: float(v) for k, v in metrics.items()})
  return losses, state


def test_train_step_reduces_loss_on_a_fixed_batch(tiny_config):
  losses, state = train_on_a_fixed_batch(tiny_config, 8)
  assert losses[-1] < losses[0]
  assert int(state.step) == 8


def test_hash_warmup_ramps_the_weight_of_the_hash_terms(tiny_config):
  """loss.hash_warmup_steps=4: the hash terms' weight is 1/4, 2/4, 3/4, 1, 1 at steps
  1..5, and each step's loss is w (L1 + eta L2) + zeta L3 of its logged terms."""
  tiny_config.loss_name = 'dpfah'
  tiny_config.loss.hash_warmup_steps = 4
  logged = []
  train_on_a_fixed_batch(tiny_config, 5, logged)
  np.testing.assert_allclose([m['hash_weight'] for m in logged], [0.25, 0.5, 0.75, 1, 1])
  for m in logged:
    want = m['hash_weight'] * (m['l1'] + 10.0 * m['l2']) + 0.1 * m['l3']
    np.testing.assert_allclose(m['loss'], want, rtol=1e-5)


def test_grad_clip_norm_clips_before_the_optimizer():
  """Adam after clipping at norm 1 equals plain Adam fed the clipped gradients (the first
  of norm 10 scaled to 1, the second of norm 0.5 unchanged); unclipped Adam differs."""
  import ml_collections
  import optax

  def optimizer(clip):
    opt = dict(name='adam', learning_rate=0.1, weight_decay=0.0, b1=0.9, b2=0.999)
    return state_lib.create_optimizer(
      ml_collections.ConfigDict({'optimizer': dict(opt, grad_clip_norm=clip)})
    )

  g1 = jax.numpy.array([6.0, 8.0])  # Norm 10.
  g2 = jax.numpy.array([0.3, -0.4])  # Norm 0.5.

  def run(tx, grads):
    params = jax.numpy.zeros(2)
    opt_state = tx.init(params)
    for g in grads:
      updates, opt_state = tx.update(g, opt_state, params)
      params = optax.apply_updates(params, updates)
    return np.asarray(params)

  clipped = run(optimizer(1.0), [g1, g2])
  np.testing.assert_allclose(clipped, run(optimizer(0.0), [g1 / 10, g2]), rtol=1e-6)
  assert not np.allclose(clipped, run(optimizer(0.0), [g1, g2]), rtol=1e-3)


@pytest.mark.parametrize(
  'field,value,error,match',
  [
    ('model_name', 'resnet99', ValueError, 'valid models: dah_resnet30, dpfah_resnet18'),
    ('loss_name', 'triplet', ValueError, 'valid losses: csq, dah'),
    (
      'data.protocol',
      'nus',
      ValueError,
      'valid protocols: cifar10, cifar10-1, cifar10-2, dah_cifar10',
    ),
    (
      'data.source',
      'hub',
      ValueError,
      'valid sources: image_folder, imagenet100, list_file, tfds',
    ),
    ('data.sampler', 'hard', ValueError, 'class_balanced, random'),
    ('model.bits', 0, ValueError, 'positive integer'),
    ('model.bits', 256, ValueError, 'at most 255 bits'),
    ('model.conv_impl', 'fft', ValueError, 'auto, xla, slices'),
    ('model.attention', 'se', ValueError, 'cbam, none'),
    ('batch_size', 7, ValueError, 'divisible by the 3 classes'),
    ('loss.hash_warmup_steps', 5, ValueError, "loss 'dah' has no weight to warm up"),
    ('loss.hash_warmup_steps', -1, ValueError, 'use 0 .off. or more steps'),
    ('optimizer.grad_clip_norm', -1.0, ValueError, 'grad_clip_norm=-1.0'),
    ('optimizer.lr_warmup_steps', -3, ValueError, 'lr_warmup_steps=-3'),
    ('plateau.evaluations', -1, ValueError, 'must be >= 0'),
    ('plateau.evaluations', 3, ValueError, 'set eval_every_steps > 0'),
    ('data.data_dir', '/no/such/dir', FileNotFoundError, '/no/such/dir.*<root>/<split>'),
  ],
)
def test_bad_config_fails_before_anything_is_written(
  tiny_config, tmp_path, field, value, error, match
):
  workdir = tmp_path / 'run'
  os.makedirs(workdir)
  (workdir / 'keep.txt').write_text('precious')
  node, name = tiny_config, field
  if '.' in field:
    section, name = field.split('.')
    node = tiny_config[section]
  node[name] = value
  with pytest.raises(error, match=match):
    validation.validate(tiny_config, str(workdir))
  assert os.listdir(workdir) == ['keep.txt']


def test_missing_workdir_parent(tiny_config, tmp_path):
  with pytest.raises(FileNotFoundError, match='parent of the workdir'):
    validation.validate(tiny_config, str(tmp_path / 'missing' / 'run'))


def test_num_classes_mismatch_is_explained(tiny_config, tmp_path):
  tiny_config.model.num_classes = 10
  tiny_config.batch_size = 20
  with pytest.raises(ValueError, match='num_classes=3'):
    train.train_and_evaluate(tiny_config, str(tmp_path))


def test_rmsprop_follows_pytorch_rmsprop():
  """RMSProp with weight decay as torch.optim.RMSprop computes it, written out in NumPy."""
  import ml_collections
  import optax

  cfg = ml_collections.ConfigDict(
    {
      'optimizer': dict(
        name='rmsprop',
        learning_rate=1e-2,
        weight_decay=1e-2,
        decay=0.99,
        eps=1e-8,
        grad_clip_norm=0.0,
      )
    }
  )
  tx = state_lib.create_optimizer(cfg)
  w = np.random.default_rng(0).normal(size=5)
  params = jax.numpy.asarray(w, jax.numpy.float32)
  state = tx.init(params)
  square_avg = np.zeros(5)
  for i in range(6):
    g = np.cos(np.arange(5) + i)
    updates, state = tx.update(jax.numpy.asarray(g, jax.numpy.float32), state, params)
    params = optax.apply_updates(params, updates)
    g = g + 1e-2 * w  # weight_decay: L2 on the gradient.
    square_avg = 0.99 * square_avg + 0.01 * g * g
    w = w - 1e-2 * g / (np.sqrt(square_avg) + 1e-8)
  np.testing.assert_allclose(params, w, rtol=1e-5, atol=1e-6)


def test_sgd_follows_caffe_sgd():
  """SGD as Caffe's solver runs it (DSH's release): momentum, L2 decay on the weights
  only, the biases at twice the rate; written out in NumPy."""
  import optax

  from configs import default

  cfg = default.get_config()
  cfg.optimizer.update(
    name='sgd',
    learning_rate=1e-2,
    momentum=0.9,
    weight_decay=0.1,
    decay_biases=False,
    bias_lr_mult=2.0,
  )
  tx = state_lib.create_optimizer(cfg)
  rng = np.random.default_rng(0)
  w = {'kernel': rng.normal(size=(3, 2)), 'bias': rng.normal(size=2)}
  params = jax.tree.map(lambda a: jax.numpy.asarray(a, jax.numpy.float32), w)
  state = tx.init(params)
  velocity = jax.tree.map(np.zeros_like, w)
  for i in range(5):
    g = {
      'kernel': np.cos(np.arange(6.0).reshape(3, 2) + i),
      'bias': np.sin(np.arange(2.0) + i),
    }
    updates, state = tx.update(jax.tree.map(jax.numpy.asarray, g), state, params)
    params = optax.apply_updates(params, updates)
    # Caffe: v = momentum v + local_rate (g + local_decay w); w -= v.
    velocity['kernel'] = 0.9 * velocity['kernel'] + 1e-2 * (g['kernel'] + 0.1 * w['kernel'])
    velocity['bias'] = 0.9 * velocity['bias'] + 2e-2 * g['bias']
    w = {k: w[k] - velocity[k] for k in w}
  for k in w:
    np.testing.assert_allclose(params[k], w[k], rtol=1e-5, atol=1e-6)


def test_step_schedule_multiplies_the_rate_every_n_steps():
  from configs import default

  opt = default.get_config().optimizer
  opt.update(
    learning_rate=1e-3, lr_schedule='step', lr_decay_every_steps=20, lr_decay_factor=0.6
  )
  schedule = state_lib.learning_rate(opt)
  got = [float(schedule(s)) for s in (0, 19, 20, 39, 40, 100)]
  np.testing.assert_allclose(
    got, [1e-3, 1e-3, 6e-4, 6e-4, 3.6e-4, 1e-3 * 0.6**5], rtol=1e-5
  )
  opt.lr_decay_every_steps = 0
  with pytest.raises(ValueError, match='lr_decay_every_steps=0'):
    state_lib.learning_rate(opt)
  opt.lr_schedule = 'linear'
  with pytest.raises(ValueError, match="Unknown optimizer.lr_schedule 'linear'"):
    state_lib.learning_rate(opt)


def test_multistep_schedule_decays_at_the_given_steps():
  from configs import default

  opt = default.get_config().optimizer
  opt.update(
    learning_rate=1e-3,
    lr_schedule='multistep',
    lr_decay_at_steps=(6, 9),
    lr_decay_factor=0.1,
  )
  schedule = state_lib.learning_rate(opt)
  got = [float(schedule(s)) for s in range(12)]
  np.testing.assert_allclose(got, [1e-3] * 6 + [1e-4] * 3 + [1e-5] * 3, rtol=1e-5)
  for bad in [(), (9, 6), (6, 6), (0, 5)]:
    opt.lr_decay_at_steps = bad
    with pytest.raises(ValueError, match='lr_decay_at_steps'):
      state_lib.learning_rate(opt)


def test_dsh_release_solver_is_the_papers_until_its_first_decay():
  """configs/dsh_cifar10_release.py changes only the schedule of configs/dsh_cifar10.py,
  and the two rates agree before step 20,000: a run's checkpoints from either are the
  other's up to there."""
  from configs import dsh_cifar10
  from configs import dsh_cifar10_release

  paper, release = dsh_cifar10.get_config(), dsh_cifar10_release.get_config()
  assert checkpoints.run_settings(paper) == checkpoints.run_settings(release)
  paper_rate = state_lib.learning_rate(paper.optimizer)
  release_rate = state_lib.learning_rate(release.optimizer)
  steps = [0, 1, 10_000, 19_999, 20_000, 59_999, 60_000, 65_000, 69_999]
  got = np.array([[float(r(s)) for s in steps] for r in (paper_rate, release_rate)])
  np.testing.assert_allclose(got[:, :4], 1e-3, rtol=1e-6)
  np.testing.assert_allclose(got[0, 4:], 1e-3 * 0.6 ** np.array([1, 2, 3, 3, 3]), rtol=1e-5)
  np.testing.assert_allclose(got[1, 4:], [1e-3, 1e-3, 1e-4, 1e-5, 1e-5], rtol=1e-5)


def test_cosine_schedule_after_warmup_matches_its_formula():
  from configs import default

  opt = default.get_config().optimizer
  opt.update(learning_rate=2e-3, lr_schedule='cosine', lr_end_factor=0.1, lr_warmup_steps=4)
  schedule = state_lib.learning_rate(opt, total_steps=24)
  steps = np.arange(30)
  # Linear from 0 over 4 steps, then half a cosine over the 20 left, then its floor.
  t = np.clip(steps - 4, 0, 20) / 20
  want = 2e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t)))
  want[:4] = 2e-3 * steps[:4] / 4
  got = [float(schedule(s)) for s in steps]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
  with pytest.raises(ValueError, match="needs the run's number of steps"):
    state_lib.learning_rate(opt)
  with pytest.raises(ValueError, match='run has 4 steps and optimizer.lr_warmup_steps=4'):
    state_lib.learning_rate(opt, total_steps=4)
  opt.lr_warmup_steps = -1
  with pytest.raises(ValueError, match='lr_warmup_steps=-1'):
    state_lib.learning_rate(opt, total_steps=24)
  opt.update(lr_warmup_steps=0, lr_end_factor=-0.5)
  with pytest.raises(ValueError, match='lr_end_factor=-0.5'):
    state_lib.learning_rate(opt, total_steps=24)


def test_train_state_steps_along_the_runs_schedule(tiny_config):
  """The run's length reaches the optimiser: plain SGD's update at step s is -rate(s)
  times the gradient, along a one-step warm-up and then the cosine."""
  config = tiny_config
  config.optimizer.update(
    name='sgd',
    momentum=0.0,
    weight_decay=0.0,
    learning_rate=0.5,
    lr_schedule='cosine',
    lr_warmup_steps=1,
  )
  model = state_lib.create_model(config)
  st = state_lib.create_train_state(jax.random.key(0), config, model, total_steps=3)
  grads = jax.tree.map(jnp.ones_like, st.params)
  leaf = lambda tree: jax.tree.leaves(tree)[0]
  rates = []
  for _ in range(4):
    new = st.apply_gradients(grads=grads)
    rates.append(float(jnp.mean(leaf(st.params) - leaf(new.params))))
    st = new
  np.testing.assert_allclose(rates, [0.0, 0.5, 0.25, 0.0], atol=1e-6)


def test_unknown_optimizer():
  import ml_collections

  cfg = ml_collections.ConfigDict({'optimizer': dict(name='lamb', learning_rate=1.0)})
  with pytest.raises(ValueError, match='adam, rmsprop'):
    state_lib.create_optimizer(cfg)


def test_bfloat16_stays_close_to_float32(tiny_config):
  """model.dtype='bfloat16' computes in bfloat16 with float32 parameters, optimiser
  state, heads and loss. The loss of the same initial state stays within 3% of
  float32's (bfloat16 keeps 8 mantissa bits, about 0.4% per operation), and bfloat16
  training lowers it as float32's does. Later steps are not compared value by value:
  on 6 images Adam's first steps amplify the rounding (step 4 differed by 10% on one
  machine and by under 6% on another).

  Gradients are not compared elementwise: at initialisation, on 6 random images, the
  rounding moves many ReLU and max-pooling decisions, which changes the early layers'
  gradients by tens of percent in bfloat16 while the loss barely moves.
  """
  runs = {}
  for dtype in ('float32', 'bfloat16'):
    tiny_config.model.dtype = dtype
    runs[dtype] = train_on_a_fixed_batch(tiny_config, 4)
  (l32, _), (l16, s16) = runs['float32'], runs['bfloat16']
  assert {p.dtype for p in jax.tree.leaves(s16.params)} == {np.dtype('float32')}
  assert {p.dtype for p in jax.tree.leaves(s16.opt_state) if p.ndim > 0} == {
    np.dtype('float32')
  }
  print(
    f'bfloat16 vs float32 losses over 4 steps: {np.round(l16, 4)} vs {np.round(l32, 4)}'
  )
  np.testing.assert_allclose(l16[0], l32[0], rtol=3e-2)
  assert l16[0] != l32[0]  # bfloat16 did compute differently.
  assert min(l16[1:]) < l16[0] and min(l32[1:]) < l32[0]


def strict_json(text):
  """json.loads that rejects NaN and Infinity, as JavaScript's JSON.parse does."""

  def reject(name):
    raise ValueError(f'not strict JSON: {name}')

  return json.loads(text, parse_constant=reject)


def test_learning_curve_follows_the_parameters(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  tiny_config.num_train_steps = 5
  tiny_config.eval_every_steps = 2
  tiny_config.eval.curve_queries = 5
  validation.validate(tiny_config, workdir)
  final = train.train_and_evaluate(tiny_config, workdir)
  eval_dir = os.path.join(workdir, 'eval')
  with open(os.path.join(eval_dir, evaluate.CURVE_FILE)) as f:
    points = [strict_json(line) for line in f]
  # Every 2 steps, and the last point from the final evaluation.
  assert [p['step'] for p in points] == [2, 4, 5]
  steps_per_epoch = 24 // tiny_config.batch_size
  assert [p['epoch'] for p in points] == [2 / steps_per_epoch, 1.0, 5 / steps_per_epoch]
  assert all(p['num_queries'] == 5 for p in points)
  assert all('train_loss' in p and 'train_ce' in p for p in points)
  assert os.path.getsize(os.path.join(eval_dir, evaluate.CURVE_PLOT)) > 0
  rows = evaluate.curve_queries(12, 5)
  np.testing.assert_array_equal(rows, evaluate.curve_queries(12, 5))  # Fixed.
  assert len(set(rows.tolist())) == 5

  def subset_map(metrics_step):
    codes = np.load(os.path.join(eval_dir, 'codes.npz'))
    assert json.load(open(os.path.join(eval_dir, 'metrics.json')))['step'] == metrics_step
    return retrieval.mean_average_precision(
      codes['query_codes'][rows],
      codes['database_codes'],
      codes['query_labels'][rows],
      codes['database_labels'],
    )

  # The last point is the final evaluation restricted to the curve's queries ...
  assert points[-1]['map'] == pytest.approx(subset_map(5))
  assert final['step'] == 5
  # ... and the point of step 2 is that of checkpoint 2, evaluated afresh.
  evaluate.evaluate(tiny_config, workdir, checkpoint_step=2)
  assert points[0]['map'] == pytest.approx(subset_map(2))
  logged = [
    r for r in read_jsonl(os.path.join(workdir, 'metrics.jsonl')) if 'curve_map' in r
  ]
  assert [r['step'] for r in logged] == [2, 4, 5]
  for name in ('metrics.json',):
    strict_json(open(os.path.join(eval_dir, name)).read())


def test_resume_records_the_curve_point_a_stop_left_out(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  tiny_config.num_train_steps = 5
  tiny_config.eval_every_steps = 2
  tiny_config.checkpoint_every_steps = 2
  tiny_config.eval.curve_queries = 5
  validation.validate(tiny_config, workdir)
  train.train_and_evaluate(tiny_config, workdir)
  curve_path = os.path.join(workdir, 'eval', evaluate.CURVE_FILE)
  full = evaluate.read_curve(curve_path)
  assert [p['step'] for p in full] == [2, 4, 5]
  # As if the run had been stopped after saving checkpoint 4, before its point.
  with open(curve_path, 'w') as f:
    f.write(json.dumps(full[0]) + '\n')
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '5'))
  train.train_and_evaluate(tiny_config, workdir)
  resumed = evaluate.read_curve(curve_path)
  assert [p['step'] for p in resumed] == [2, 4, 5]
  assert resumed[1]['map'] == pytest.approx(full[1]['map'])
  assert resumed[1]['bit_balance'] == pytest.approx(full[1]['bit_balance'])
  assert not any(k.startswith('train_') for k in resumed[1])  # Those terms were lost.
  assert resumed[2]['map'] == pytest.approx(full[2]['map'])  # The resume is exact.
  # A point already there is not evaluated again.
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '5'))
  train.train_and_evaluate(tiny_config, workdir)
  with open(curve_path) as f:
    assert [json.loads(line)['step'] for line in f] == [2, 4, 5, 5]


def loop_plateau(maps, min_delta, evaluations):
  """The plateau rule as a plain loop: points since the last gain of more than
  `min_delta` over the best gaining point; at least `evaluations` of them."""
  best, since = None, 0
  for m in maps:
    if best is None or m > best + min_delta:
      best, since = m, 0
    else:
      since += 1
  return evaluations > 0 and since >= evaluations


def test_plateau_rule_matches_a_loop_and_worked_cases():
  # Three points each under 0.005 above 0.50: a plateau; a slow rise that adds up is not.
  assert evaluate.plateau_reached([0.40, 0.50, 0.503, 0.504, 0.5045], 0.005, 3)
  assert not evaluate.plateau_reached([0.40, 0.50, 0.503, 0.504], 0.005, 3)
  assert not evaluate.plateau_reached([0.50, 0.503, 0.506, 0.507, 0.508], 0.005, 3)
  assert evaluate.plateau_reached([0.50, 0.49, 0.48, 0.47], 0.005, 3)  # Falling.
  # Only the latest points count: a gain after an earlier flat stretch starts afresh.
  assert not evaluate.plateau_reached([0.50, 0.50, 0.50, 0.50, 0.52], 0.005, 3)
  assert not evaluate.plateau_reached([0.5] * 10, 0.005, 0)  # Off.
  assert not evaluate.plateau_reached([], 0.005, 1)
  rng = np.random.default_rng(0)
  for _ in range(500):
    maps = np.cumsum(rng.normal(0.002, 0.006, rng.integers(0, 12))).tolist()
    n, delta = int(rng.integers(0, 5)), float(rng.choice([0.0, 0.003, 0.005, 0.01]))
    assert evaluate.plateau_reached(maps, delta, n) == loop_plateau(maps, delta, n)


def test_training_stops_at_the_curve_plateau_and_stays_stopped(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  tiny_config.num_train_steps = 6
  tiny_config.eval_every_steps = 1
  tiny_config.checkpoint_every_steps = 4
  tiny_config.eval.curve_queries = 5
  tiny_config.plateau.evaluations = 2
  tiny_config.plateau.min_delta = 1.0  # No point can gain that much: stop at step 3.
  validation.validate(tiny_config, workdir)
  final = train.train_and_evaluate(tiny_config, workdir)
  assert final['step'] == 3
  # Step 3 is no checkpoint step: the stop saved it, and the final evaluation is of it.
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['3']
  curve_path = os.path.join(workdir, 'eval', evaluate.CURVE_FILE)
  assert [p['step'] for p in evaluate.read_curve(curve_path)] == [1, 2, 3]
  # The final evaluation of the stopped step adds no second point without training terms.
  assert [p['step'] for p in read_jsonl(curve_path)] == [1, 2, 3]
  assert all('train_loss' in p for p in read_jsonl(curve_path))

  def trained_steps():
    rows = read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
    return [r['step'] for r in rows if 'train_loss' in r]

  assert trained_steps() == [1, 2, 3]
  # Started again, the run finds its plateau in the curve and trains no further.
  again = train.train_and_evaluate(tiny_config, workdir)
  assert again['step'] == 3 and again['map'] == final['map']
  assert trained_steps() == [1, 2, 3]
  assert [p['step'] for p in read_jsonl(curve_path)] == [1, 2, 3]
  # A rule that every point meets (any change is a gain) trains the whole schedule.
  tiny_config.plateau.min_delta = -1.0
  assert train.train_and_evaluate(tiny_config, workdir)['step'] == 6
  assert trained_steps() == [1, 2, 3, 4, 5, 6]


def test_restore_for_eval_reads_the_parameters_without_an_optimizer(tiny_config, tmp_path):
  from dahjax import checkpoints  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path / 'run')
  validation.validate(tiny_config, workdir)
  train.train_and_evaluate(tiny_config, workdir)
  model = state_lib.create_model(tiny_config)
  evaluated = state_lib.restore_for_eval(tiny_config, workdir, model)
  assert not hasattr(evaluated, 'opt_state') and int(evaluated.step) == 3
  manager = checkpoints.create_manager(workdir, tiny_config, read_only=True)
  full = checkpoints.restore(
    manager, 3, state_lib.create_train_state(jax.random.key(1), tiny_config, model), workdir
  )
  for a, b in zip(
    jax.tree.leaves((evaluated.params, evaluated.batch_stats)),
    jax.tree.leaves((full.params, full.batch_stats)),
  ):
    np.testing.assert_array_equal(a, b)


def test_a_loss_memory_is_trained_checkpointed_and_resumed_exactly(tiny_config, tmp_path):
  """DSDH keeps every training image's outputs, labels and codes in the train state: the
  batches write their rows, checkpoints hold it, and a resumed run ends where an
  uninterrupted one does."""
  from dahjax import checkpoints
  from dahjax import losses

  tiny_config.model_name = 'dsh_cnn'
  tiny_config.loss_name = 'dsdh'
  tiny_config.loss.dsdh.update_every = 2
  tiny_config.num_train_steps = 4

  def final_state(workdir):
    model = state_lib.create_model(tiny_config)
    state = state_lib.create_train_state(
      jax.random.key(0), tiny_config, model, num_train=24
    )
    manager = checkpoints.create_manager(workdir, tiny_config)
    return checkpoints.restore(manager, 4, state, workdir)

  straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
  os.makedirs(straight)
  os.makedirs(resumed)
  train.train_and_evaluate(tiny_config, straight)
  tiny_config.num_train_steps = 2
  train.train_and_evaluate(tiny_config, resumed)
  tiny_config.num_train_steps = 4
  train.train_and_evaluate(tiny_config, resumed)

  a, b = final_state(straight), final_state(resumed)
  memory = jax.tree.map(np.asarray, a.loss_memory)
  assert set(memory) == {'U', 'Y', 'B', 'W'} and memory['U'].shape == (24, 8)
  seen = np.any(memory['U'] != 0, axis=1)
  assert 6 <= seen.sum() <= 24  # 4 batches of 6 images of the 24.
  np.testing.assert_array_equal(np.abs(memory['B'][seen]), 1.0)  # Codes of the seen rows.
  assert np.all(memory['Y'][seen].sum(1) == 1) and not memory['Y'][~seen].any()
  assert np.any(memory['W'] != 0)  # Updated at steps 2 and 4.
  for x, y in zip(
    jax.tree.leaves((a.params, a.loss_memory)), jax.tree.leaves((b.params, b.loss_memory))
  ):
    np.testing.assert_array_equal(x, y)
  assert losses.init_memory('dsh', num_train=24, bits=8, num_classes=3) == {}


def test_exit_when_stopped_turns_stops_into_exits():
  """A SIGTERM's `Preempted` exits with 143 (a scheduler requeues the job), an unreadable
  image under bad_images='error' with one 'dahjax:' line, anything else passes."""
  from dahjax.data import bad_images

  with pytest.raises(SystemExit) as stop:
    with train.exit_when_stopped():
      raise train.Preempted(7)
  assert stop.value.code == train.EXIT_PREEMPTED == 143
  with pytest.raises(SystemExit) as stop:
    with train.exit_when_stopped():
      raise bad_images.BadImageError('/data/a.jpg', 'truncated')
  assert str(stop.value.code).startswith('dahjax: ') and 'a.jpg' in str(stop.value.code)
  with pytest.raises(ZeroDivisionError):
    with train.exit_when_stopped():
      raise ZeroDivisionError
