"""DPSH's loss against its pairwise form over batch x memory written pair by pair, and its
gradient against the paper's dJ/du_i written in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import dpsh

N, B, K, C = 9, 4, 5, 3


def loop_dpsh_loss(u, labels, memory, indices, eta=10.0):
  """sum over i in the batch, j over all N of 2 (log(1 + e^Theta_ij) - s_ij Theta_ij), plus
  eta ||b_i - u_i||^2 with b_i = sgn(u_i) fixed, divided by B N; the batch's rows of U, Y
  overwritten first, U's with constants."""
  n = memory['U'].shape[0]
  mem_u = [memory['U'][j] for j in range(n)]
  mem_y = [memory['Y'][j] for j in range(n)]
  for i, idx in enumerate(indices):
    mem_u[int(idx)] = jax.lax.stop_gradient(u[i])
    mem_y[int(idx)] = labels[i]
  total = 0.0
  for i in range(len(indices)):
    for j in range(n):
      theta = 0.5 * jnp.dot(u[i], mem_u[j])
      s = (jnp.dot(labels[i], mem_y[j]) > 0).astype(jnp.float32)
      total = total + 2.0 * (jnp.log1p(jnp.exp(theta)) - s * theta)
    b = jax.lax.stop_gradient(jnp.where(u[i] >= 0, 1.0, -1.0))
    total = total + eta * jnp.sum((b - u[i]) ** 2)
  return total / (len(indices) * n)


def paper_gradient(u, labels, memory, indices, eta=10.0):
  """dJ/du_i = 1/2 sum_j (a_ij - s_ij) u_j + 1/2 sum_j (a_ji - s_ji) u_j + 2 eta (u_i - b_i),
  the sums over the memory (batch rows current), divided by B N."""
  u, labels = np.asarray(u, np.float64), np.asarray(labels, np.float64)
  mem_u, mem_y = np.array(memory['U'], np.float64), np.array(memory['Y'], np.float64)
  mem_u[indices], mem_y[indices] = u, labels
  grad = np.zeros_like(u)
  for i in range(len(indices)):
    for j in range(len(mem_u)):
      a_ij = 1.0 / (1.0 + np.exp(-0.5 * u[i] @ mem_u[j]))
      a_ji = 1.0 / (1.0 + np.exp(-0.5 * mem_u[j] @ u[i]))
      s_ij = float(labels[i] @ mem_y[j] > 0)
      s_ji = float(mem_y[j] @ labels[i] > 0)
      grad[i] += 0.5 * (a_ij - s_ij) * mem_u[j] + 0.5 * (a_ji - s_ji) * mem_u[j]
    grad[i] += 2.0 * eta * (u[i] - np.where(u[i] >= 0, 1.0, -1.0))
  return grad / (len(indices) * len(mem_u))


def make_case(seed, multi_label=False, scale=1.0):
  """A batch and a memory whose other rows hold earlier outputs and labels, two still zero."""
  rng = np.random.default_rng(seed)
  if multi_label:
    draw = lambda n: (rng.random((n, C)) < 0.4).astype(np.float32)
  else:
    draw = lambda n: np.eye(C, dtype=np.float32)[rng.integers(0, C, size=n)]
  memory = {
    'U': jnp.asarray(rng.normal(size=(N, K)) * scale, jnp.float32).at[-2:].set(0.0),
    'Y': jnp.asarray(draw(N)).at[-2:].set(0.0),
  }
  indices = jnp.asarray(rng.permutation(N - 2)[:B], jnp.int32)
  u = jnp.asarray(rng.normal(size=(B, K)) * scale, jnp.float32)
  return u, jnp.asarray(draw(B)), memory, indices


def loss_fn(**kwargs):
  def fn(u, labels, memory, indices):
    return dpsh.dpsh_loss(
      outputs={'hash': u}, labels=labels, memory=memory, indices=indices, **kwargs
    )

  return fn


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize('kwargs', [{}, {'eta': 0.5}])
def test_dpsh_loss_and_gradient_match_loop_and_paper(multi_label, kwargs):
  u, labels, memory, indices = make_case(0, multi_label=multi_label)
  fn = jax.jit(lambda *a: loss_fn(**kwargs)(*a)[0])
  want = loop_dpsh_loss(u, labels, memory, indices, **kwargs)
  np.testing.assert_allclose(fn(u, labels, memory, indices), want, rtol=1e-5)
  got_grad = jax.grad(fn)(u, labels, memory, indices)
  loop_grad = jax.grad(loop_dpsh_loss)(u, labels, memory, indices, **kwargs)
  np.testing.assert_allclose(got_grad, loop_grad, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(
    got_grad, paper_gradient(u, labels, memory, indices, **kwargs), rtol=1e-4, atol=1e-7
  )


def test_dpsh_terms_sum_to_the_loss_and_eta_scales_the_quantization():
  u, labels, memory, indices = make_case(1)
  loss, aux = loss_fn()(u, labels, memory, indices)
  np.testing.assert_allclose(loss, aux['likelihood'] + aux['quantization'], rtol=1e-6)
  _, aux5 = loss_fn(eta=5.0)(u, labels, memory, indices)
  np.testing.assert_allclose(aux5['quantization'], 0.5 * aux['quantization'], rtol=1e-6)
  np.testing.assert_allclose(aux5['likelihood'], aux['likelihood'], rtol=1e-6)


def test_dpsh_memory_rows_of_the_batch_are_updated_and_the_others_untouched():
  u, labels, memory, indices = make_case(2)
  _, aux = jax.jit(loss_fn())(u, labels, memory, indices)
  new = aux['memory']
  assert sorted(new) == ['U', 'Y']
  np.testing.assert_array_equal(new['U'][indices], u)
  np.testing.assert_array_equal(new['Y'][indices], labels)
  others = np.setdiff1d(np.arange(N), np.asarray(indices))
  for name in ('U', 'Y'):
    np.testing.assert_array_equal(new[name][others], memory[name][others])
    assert new[name].shape == memory[name].shape and new[name].dtype == jnp.float32


def test_dpsh_unseen_rows_add_log2_and_no_gradient():
  u, labels, memory, indices = make_case(3)
  fn = lambda u, m: loss_fn()(u, labels, m, indices)[1]['likelihood']
  # Two more zero rows: each adds 2 log 2 per batch image to the B N sum, and no gradient.
  grown = {k: jnp.concatenate([v, jnp.zeros((2, v.shape[1]))]) for k, v in memory.items()}
  np.testing.assert_allclose(
    fn(u, grown) * (N + 2), fn(u, memory) * N + 2 * 2 * np.log(2.0), rtol=1e-5
  )
  np.testing.assert_allclose(
    jax.grad(fn)(u, grown) * (N + 2), jax.grad(fn)(u, memory) * N, rtol=1e-4, atol=1e-7
  )


def test_dpsh_init_memory_is_zero():
  memory = dpsh.dpsh_init_memory(num_train=7, bits=12, num_classes=10)
  assert memory['U'].shape == (7, 12) and memory['Y'].shape == (7, 10)
  assert all(float(jnp.abs(a).max()) == 0.0 for a in memory.values())


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4, -1e4])
def test_dpsh_loss_finite_at_edges(value):
  memory = dpsh.dpsh_init_memory(num_train=6, bits=12, num_classes=2)
  memory = {'U': memory['U'] + value, 'Y': memory['Y'].at[:, 0].set(1.0)}
  u = jnp.full((4, 12), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  indices = jnp.array([0, 2, 3, 5])
  fn = lambda u: dpsh.dpsh_loss(
    outputs={'hash': u}, labels=labels, memory=memory, indices=indices
  )[0]
  assert np.isfinite(float(fn(u)))
  assert np.all(np.isfinite(np.asarray(jax.grad(fn)(u))))
