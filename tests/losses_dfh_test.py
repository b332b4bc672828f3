"""DFH's loss against its pairwise form over batch x memory written pair by pair, and its
discrete centre update against the release's update equation written class by class."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import dfh

N, B, K, C = 9, 4, 6, 3


def np_sign(x):
  return np.where(x >= 0, 1.0, -1.0)


def loop_codes(u, labels, centers, mu):
  """b_ir = sgn(u_ir + mu sum_c C_rc y_ic / |y_i|), bit by bit."""
  u, labels, centers = np.asarray(u), np.asarray(labels), np.asarray(centers)
  b = np.zeros_like(u)
  for i in range(u.shape[0]):
    count = max(labels[i].sum(), 1.0)
    for r in range(u.shape[1]):
      pull = sum(centers[r, c] * labels[i, c] / count for c in range(labels.shape[1]))
      b[i, r] = 1.0 if u[i, r] + mu * pull >= 0 else -1.0
  return b


def loop_dfh_loss(u, labels, memory, indices, margin=3.0, mu=1.0, eta=0.5):
  """mean over i in the batch, j over all N of s log(1 + e^(m - Theta)) +
  (1 - s) log(1 + e^(m + Theta)), plus eta mean (b - u)^2; the batch's rows of U, Y
  overwritten first, U's with constants."""
  n = memory['U'].shape[0]
  mem_u = [memory['U'][j] for j in range(n)]
  mem_y = [memory['Y'][j] for j in range(n)]
  for i, idx in enumerate(indices):
    mem_u[int(idx)] = jax.lax.stop_gradient(u[i])
    mem_y[int(idx)] = labels[i]
  b = loop_codes(jax.lax.stop_gradient(u), labels, memory['C'], mu)
  pair_total, quant_total = 0.0, 0.0
  for i in range(len(indices)):
    for j in range(n):
      theta = 0.5 * jnp.dot(u[i], mem_u[j])
      s = (jnp.dot(labels[i], mem_y[j]) > 0).astype(jnp.float32)
      pair_total = pair_total + s * jnp.log1p(jnp.exp(margin - theta))
      pair_total = pair_total + (1 - s) * jnp.log1p(jnp.exp(margin + theta))
    quant_total = quant_total + jnp.sum((b[i] - u[i]) ** 2)
  return pair_total / (len(indices) * n) + eta * quant_total / u.size


def np_center_update(centers, codes, weights, nu=1.0):
  """The release's DCC over the classes in its K x k layout (row i of C is centre i):
  C_i = sgn(q_i - C'^T Y' y_i - nu C'^T 1), C', Y' without row i, Q = Y B^T."""
  c = np.array(centers, np.float64).T
  y = np.array(weights, np.float64).T
  q = y @ np.array(codes, np.float64)
  for i in range(c.shape[0]):
    c_rest, y_rest = np.delete(c, i, axis=0), np.delete(y, i, axis=0)
    ones = np.ones(c.shape[0] - 1)
    c[i] = np_sign(q[i] - c_rest.T @ y_rest @ y[i] - nu * c_rest.T @ ones)
  return c.T


def draw_labels(rng, n, multi_label):
  if multi_label:
    return (rng.random((n, C)) < 0.4).astype(np.float32)
  return np.eye(C, dtype=np.float32)[rng.integers(0, C, size=n)]


def make_case(seed, multi_label=False, scale=1.0):
  """A batch and a memory whose other rows hold earlier outputs and labels, and +-1 centres."""
  rng = np.random.default_rng(seed)
  memory = {
    'U': jnp.asarray(rng.normal(size=(N, K)) * scale, jnp.float32),
    'Y': jnp.asarray(draw_labels(rng, N, multi_label)),
    'C': jnp.asarray(np_sign(rng.normal(size=(K, C))), jnp.float32),
  }
  u = jnp.asarray(rng.normal(size=(B, K)) * scale, jnp.float32)
  indices = jnp.asarray(rng.permutation(N)[:B], jnp.int32)
  return u, jnp.asarray(draw_labels(rng, B, multi_label)), memory, indices


def loss_fn(memory, indices, **kwargs):
  return jax.jit(
    lambda u, l: dfh.dfh_loss(
      outputs={'hash': u}, labels=l, memory=memory, indices=indices, **kwargs
    )
  )


def weights_of(labels):
  labels = np.asarray(labels)
  return labels / np.maximum(labels.sum(-1, keepdims=True), 1.0)


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'margin': 1.0, 'mu': 0.1, 'nu': 0.5, 'eta': 2.0}])
def test_dfh_loss_matches_loop(multi_label, kwargs):
  u, labels, memory, indices = make_case(0, multi_label=multi_label)
  fn = loss_fn(memory, indices, **kwargs)
  loop_kwargs = {k: v for k, v in kwargs.items() if k != 'nu'}
  value = lambda u: fn(u, labels)[0]
  want = loop_dfh_loss(u, labels, memory, indices, **loop_kwargs)
  np.testing.assert_allclose(value(u), want, rtol=1e-5)
  g_got = jax.grad(value)(u)
  g_want = jax.grad(loop_dfh_loss)(u, labels, memory, indices, **loop_kwargs)
  np.testing.assert_allclose(g_got, g_want, rtol=1e-4, atol=1e-7)


def test_dfh_terms_sum_to_the_loss_and_margin_zero_is_the_plain_likelihood():
  u, labels, memory, indices = make_case(1)
  loss, aux = loss_fn(memory, indices)(u, labels)
  np.testing.assert_allclose(loss, aux['pairs'] + aux['quantization'], rtol=1e-6)
  _, aux0 = loss_fn(memory, indices, margin=0.0)(u, labels)
  mem_u, mem_y = np.array(memory['U']), np.array(memory['Y'])
  mem_u[np.asarray(indices)], mem_y[np.asarray(indices)] = u, labels
  theta = 0.5 * np.asarray(u, np.float64) @ mem_u.T
  s = (np.asarray(labels) @ mem_y.T > 0).astype(np.float64)
  np.testing.assert_allclose(
    aux0['pairs'], np.mean(np.logaddexp(0, theta) - s * theta), 1e-5
  )
  assert float(aux['pairs']) > float(aux0['pairs'])  # The margin asks for more.


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('nu', [1.0, 0.3])
def test_dfh_memory_rows_of_the_batch_are_written_and_centres_follow_the_dcc(
  multi_label, nu
):
  u, labels, memory, indices = make_case(2, multi_label=multi_label)
  _, aux = loss_fn(memory, indices, nu=nu)(u, labels)
  new, idx = aux['memory'], np.asarray(indices)
  others = np.setdiff1d(np.arange(N), idx)
  np.testing.assert_array_equal(new['U'][idx], u)
  np.testing.assert_array_equal(new['Y'][idx], labels)
  for name in ('U', 'Y'):
    np.testing.assert_array_equal(new[name][others], memory[name][others])
  codes = loop_codes(u, labels, memory['C'], mu=1.0)
  want = np_center_update(memory['C'], codes, weights_of(labels), nu=nu)
  np.testing.assert_array_equal(new['C'], want)


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('start', ['zeros', 'random'])
def test_dfh_center_update_matches_the_classwise_dcc_and_lowers_its_objective(
  multi_label, start
):
  rng = np.random.default_rng(3)
  n, k, classes = 12, 8, 5
  codes = np_sign(rng.normal(size=(n, k)))
  weights = weights_of(
    (rng.random((n, classes)) < 0.4)
    if multi_label
    else np.eye(classes)[rng.integers(0, classes, size=n)]
  )
  centers = (
    np.zeros((k, classes)) if start == 'zeros' else np_sign(rng.normal(size=(k, classes)))
  )
  got = jax.jit(
    lambda c, b, y: dfh.dfh_center_update(centers=c, codes=b, labels=y, nu=0.7)
  )(
    jnp.asarray(centers, jnp.float32),
    jnp.asarray(codes, jnp.float32),
    jnp.asarray(weights, jnp.float32),
  )
  want = np_center_update(centers, codes, weights, nu=0.7)
  np.testing.assert_array_equal(got, want)
  objective = lambda c: (
    np.sum((codes.T - c @ weights.T) ** 2)
    + 0.7 * (np.sum(c.sum(-1) ** 2) - np.sum(c * c))  # sum_{k != l} c_k^T c_l
  )
  if start == 'random':
    assert objective(np.asarray(got, np.float64)) <= objective(centers) + 1e-6


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4])
def test_dfh_loss_finite_at_edges(value):
  memory = dfh.dfh_init_memory(num_train=N, bits=12, num_classes=2)
  memory['U'] = jnp.full((N, 12), value, jnp.float32)
  u = jnp.full((B, 12), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  fn = loss_fn(memory, jnp.arange(B))
  loss, aux = fn(u, labels)
  assert np.isfinite(float(loss))
  assert np.all(np.isfinite(np.asarray(jax.grad(lambda u: fn(u, labels)[0])(u))))
  for array in aux['memory'].values():
    assert np.all(np.isfinite(np.asarray(array)))
  assert set(np.unique(aux['memory']['C'])) <= {-1.0, 1.0}
