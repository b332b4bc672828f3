"""DSDH's loss against its pairwise form over batch x memory written pair by pair, and its
discrete W-, B-steps against the paper's update equations written bit by bit in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import dsdh

N, B, K, C = 9, 4, 5, 3


def np_sign(x):
  return np.where(x >= 0, 1.0, -1.0)


def loop_dsdh_loss(u, labels, memory, indices, eta=55.0):
  """sum over i in the batch, j over all N of 2 (log(1 + e^Theta_ij) - s_ij Theta_ij), plus
  eta ||b_i - u_i||^2, divided by B N; the batch's rows of U, Y overwritten first, U's
  with constants."""
  n = memory['U'].shape[0]
  mem_u = [memory['U'][j] for j in range(n)]
  mem_y = [memory['Y'][j] for j in range(n)]
  for i, idx in enumerate(indices):
    mem_u[int(idx)] = jax.lax.stop_gradient(u[i])
    mem_y[int(idx)] = labels[i]
  total = 0.0
  for i, idx in enumerate(indices):
    for j in range(n):
      theta = 0.5 * jnp.dot(u[i], mem_u[j])
      s = (jnp.dot(labels[i], mem_y[j]) > 0).astype(jnp.float32)
      total = total + 2.0 * (jnp.log1p(jnp.exp(theta)) - s * theta)
    row = memory['B'][int(idx)]
    b = row if np.any(np.asarray(row) != 0) else jnp.where(u[i] >= 0, 1.0, -1.0)
    b = jax.lax.stop_gradient(b)
    total = total + eta * jnp.sum((b - u[i]) ** 2)
  return total / (len(indices) * n)


def paper_gradient(u, labels, memory, indices, eta=55.0):
  """dJ/du_i = 1/2 sum_j (a_ij - s_ij) u_j + 1/2 sum_j (a_ji - s_ji) u_j + 2 eta (u_i - b_i),
  u_j from the memory, divided by B N."""
  u, labels = np.asarray(u, np.float64), np.asarray(labels, np.float64)
  mem_u, mem_y = np.array(memory['U'], np.float64), np.array(memory['Y'], np.float64)
  mem_u[indices], mem_y[indices] = u, labels
  n = len(mem_u)
  grad = np.zeros_like(u)
  for i, idx in enumerate(indices):
    row = np.asarray(memory['B'][idx])
    b = row if np.any(row != 0) else np_sign(u[i])
    for j in range(n):
      a = 1.0 / (1.0 + np.exp(-0.5 * u[i] @ mem_u[j]))
      s = float(labels[i] @ mem_y[j] > 0)
      grad[i] += 0.5 * (a - s) * mem_u[j] + 0.5 * (a - s) * mem_u[j]
    grad[i] += 2.0 * eta * (u[i] - b)
  return grad / (len(indices) * n)


def np_dsdh_update(codes, outputs, labels, mu=1.0, nu=0.1, eta=55.0, dcc_iter=10):
  """The paper's W-step and DCC B-step in its k x N notation, one bit (row of B) at a time."""
  b = np.array(codes, np.float64).T
  u = np.array(outputs, np.float64).T
  y = np.array(labels, np.float64).T
  k = b.shape[0]
  for _ in range(dcc_iter):
    w = np.linalg.inv(b @ b.T + nu / mu * np.eye(k)) @ b @ y.T
    p = w @ y + eta / mu * u
    for r in range(k):
      b_rest, w_rest = np.delete(b, r, axis=0), np.delete(w, r, axis=0)
      b[r] = np_sign(p[r] - b_rest.T @ w_rest @ w[r])
  return b.T, w


def make_case(seed, multi_label=False, scale=1.0):
  """A batch and a memory whose other rows hold earlier outputs, labels and codes; the
  batch's rows of B are half set, half still zero."""
  rng = np.random.default_rng(seed)
  if multi_label:
    draw = lambda n: (rng.random((n, C)) < 0.4).astype(np.float32)
  else:
    draw = lambda n: np.eye(C, dtype=np.float32)[rng.integers(0, C, size=n)]
  indices = rng.permutation(N)[:B].astype(np.int32)
  codes = np_sign(rng.normal(size=(N, K))).astype(np.float32)
  codes[indices[: B // 2]] = 0.0
  memory = {
    'U': jnp.asarray(rng.normal(size=(N, K)) * scale, jnp.float32),
    'Y': jnp.asarray(draw(N)),
    'B': jnp.asarray(codes),
    'W': jnp.asarray(rng.normal(size=(K, C)) * 0.3, jnp.float32),
  }
  u = jnp.asarray(rng.normal(size=(B, K)) * scale, jnp.float32)
  return u, jnp.asarray(draw(B)), memory, jnp.asarray(indices)


def loss_fn(memory, indices, step=0, **kwargs):
  return jax.jit(
    lambda u, l: dsdh.dsdh_loss(
      outputs={'hash': u}, labels=l, memory=memory, indices=indices, step=step, **kwargs
    )
  )


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'eta': 5.0, 'mu': 2.0, 'nu': 0.5}])
def test_dsdh_loss_matches_loop_and_paper_gradient(multi_label, kwargs):
  u, labels, memory, indices = make_case(0, multi_label=multi_label)
  fn = loss_fn(memory, indices, **kwargs)
  eta = kwargs.get('eta', 55.0)
  value = lambda u: fn(u, labels)[0]
  want = loop_dsdh_loss(u, labels, memory, indices, eta=eta)
  np.testing.assert_allclose(value(u), want, rtol=1e-5)
  g_got = jax.grad(value)(u)
  g_loop = jax.grad(loop_dsdh_loss)(u, labels, memory, indices, eta=eta)
  np.testing.assert_allclose(g_got, g_loop, rtol=1e-4, atol=1e-7)
  g_paper = paper_gradient(u, labels, memory, np.asarray(indices), eta=eta)
  np.testing.assert_allclose(g_got, g_paper, rtol=1e-4, atol=1e-7)


def test_dsdh_terms_sum_to_the_loss_and_classification_is_logged():
  u, labels, memory, indices = make_case(1)
  loss, aux = loss_fn(memory, indices)(u, labels)
  np.testing.assert_allclose(loss, aux['likelihood'] + aux['quantization'], rtol=1e-6)
  b = np.asarray(aux['memory']['B'])[np.asarray(indices)]
  want = np.mean(np.sum((np.asarray(labels) - b @ np.asarray(memory['W'])) ** 2, axis=-1))
  np.testing.assert_allclose(aux['classification'], want, rtol=1e-5)


def test_dsdh_memory_rows_of_the_batch_are_written_and_others_untouched():
  u, labels, memory, indices = make_case(2)
  _, aux = loss_fn(memory, indices, step=0)(u, labels)  # N // B = 2: no update at step 0.
  new, idx = aux['memory'], np.asarray(indices)
  others = np.setdiff1d(np.arange(N), idx)
  np.testing.assert_array_equal(new['U'][idx], u)
  np.testing.assert_array_equal(new['Y'][idx], labels)
  for name in ('U', 'Y', 'B'):
    np.testing.assert_array_equal(new[name][others], memory[name][others])
  np.testing.assert_array_equal(new['W'], memory['W'])
  unset, kept = idx[: B // 2], idx[B // 2 :]
  np.testing.assert_array_equal(new['B'][unset], np_sign(np.asarray(u)[: B // 2]))
  np.testing.assert_array_equal(new['B'][kept], memory['B'][kept])


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize(
  'kwargs',
  [{}, {'eta': 0.3, 'mu': 0.5, 'nu': 1.0, 'dcc_iter': 3}, {'eta': 0.05, 'dcc_iter': 1}],
)
def test_dsdh_update_matches_the_bitwise_dcc(multi_label, kwargs):
  u, labels, memory, indices = make_case(3, multi_label=multi_label)
  codes = np_sign(np.random.default_rng(4).normal(size=(N, K))).astype(np.float32)
  got_b, got_w = jax.jit(
    lambda b, u, y: dsdh.dsdh_discrete_update(codes=b, outputs=u, labels=y, **kwargs)
  )(jnp.asarray(codes), memory['U'], memory['Y'])
  want_b, want_w = np_dsdh_update(codes, memory['U'], memory['Y'], **kwargs)
  np.testing.assert_array_equal(got_b, want_b)
  np.testing.assert_allclose(got_w, want_w, rtol=1e-4, atol=1e-6)
  if kwargs.get('eta', 55.0) < 1.0:  # The classifier's pull, not only sgn(U), sets bits.
    assert np.any(np.asarray(got_b) != np_sign(np.asarray(memory['U'])))


def test_dsdh_update_does_not_increase_the_objective():
  _, _, memory, _ = make_case(5)
  mu, nu, eta = 1.0, 0.1, 55.0
  u, y = np.asarray(memory['U'], np.float64), np.asarray(memory['Y'], np.float64)
  objective = lambda b, w: (
    mu * np.sum((y - b @ w) ** 2) + nu * np.sum(w**2) + eta * np.sum((b - u) ** 2)
  )
  start = np.asarray(memory['B'], np.float64)
  ridge = np.linalg.solve(start.T @ start + nu / mu * np.eye(K), start.T @ y)
  b, w = dsdh.dsdh_discrete_update(
    codes=memory['B'], outputs=memory['U'], labels=memory['Y']
  )
  assert objective(np.asarray(b), np.asarray(w)) <= objective(start, ridge) + 1e-3


def np_written_codes(memory, u, indices):
  """The memory's B once the batch is written: its unset (zero) rows set to sgn(u_i)."""
  codes = np.array(memory['B'])
  for i, idx in enumerate(np.asarray(indices)):
    if not np.any(codes[idx] != 0):
      codes[idx] = np_sign(np.asarray(u[i]))
  return codes


@pytest.mark.parametrize(
  'update_every, updated_at', [(None, {1, 3}), (3, {2}), (1, {0, 1, 2, 3})]
)
def test_dsdh_updates_b_and_w_on_schedule(update_every, updated_at):
  u, labels, memory, indices = make_case(6)
  written = np_written_codes(memory, u, indices)
  for step in range(4):
    fn = loss_fn(memory, indices, step=jnp.int32(step), update_every=update_every)
    new = fn(u, labels)[1]['memory']
    if step in updated_at:  # N // B = 2 by default: after the second step of each epoch.
      want_b, want_w = np_dsdh_update(written, new['U'], new['Y'])
      np.testing.assert_array_equal(new['B'], want_b)
      np.testing.assert_allclose(new['W'], want_w, rtol=1e-4, atol=1e-6)
    else:
      np.testing.assert_array_equal(new['B'], written)
      np.testing.assert_array_equal(new['W'], memory['W'])


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4])
@pytest.mark.parametrize('step', [0, 1])  # No update, then an update (N // B = 2).
def test_dsdh_loss_finite_at_edges(value, step):
  memory = dsdh.dsdh_init_memory(num_train=N, bits=12, num_classes=2)
  memory['U'] = jnp.full((N, 12), value, jnp.float32)
  u = jnp.full((B, 12), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  fn = loss_fn(memory, jnp.arange(B), step=step)
  loss, aux = fn(u, labels)
  assert np.isfinite(float(loss))
  assert np.all(np.isfinite(np.asarray(jax.grad(lambda u: fn(u, labels)[0])(u))))
  for array in aux['memory'].values():
    assert np.all(np.isfinite(np.asarray(array)))
  assert set(np.unique(aux['memory']['B'][:B])) <= {-1.0, 1.0}
