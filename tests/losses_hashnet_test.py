"""HashNet's loss against its weighted pairwise form written pair by pair, and its
continuation schedule against the release's iteration rule."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dahjax.losses import hashnet
from tests import loss_checks


def release_beta(step, init_beta=1.0, gamma=0.005, power=0.5, step_size=200):
  """The release's ScaleTanH: the iteration count goes 1, 2, ...; whenever it is a multiple
  of step_size the scale becomes init_beta (1 + gamma count)^power."""
  scale = init_beta
  for count in range(1, step + 2):
    if count % step_size == 0:
      scale = init_beta * math.pow(1.0 + gamma * count, power)
  return scale


def loop_hashnet_loss(u, labels, beta, alpha=None):
  """sum over ordered pairs i != j of w_ij (log(1 + exp(theta_ij)) - s_ij theta_ij), with
  w_ij = |S| / |S_1| (similar) or |S| / |S_0| (dissimilar), divided by |S|;
  h = tanh(beta u), theta = alpha <h_i, h_j>."""
  n, k = u.shape
  alpha = 10.0 / k if alpha is None else alpha
  h = jnp.tanh(beta * u)
  pair_list = list(itertools.permutations(range(n), 2))
  similar = [bool(jnp.dot(labels[i], labels[j]) > 0) for i, j in pair_list]
  n_all, n_similar = len(pair_list), sum(similar)
  n_dissimilar = n_all - n_similar
  total = 0.0
  for (i, j), s in zip(pair_list, similar):
    theta = alpha * jnp.dot(h[i], h[j])
    w = n_all / n_similar if s else n_all / n_dissimilar
    total = total + w * (jnp.log1p(jnp.exp(theta)) - float(s) * theta)
  return total / n_all


@pytest.mark.parametrize('multi_label', [False, True])
@pytest.mark.parametrize(
  'step, kwargs',
  [(0, {}), (450, {}), (30, {'alpha': 0.7, 'gamma': 0.1, 'power': 1.0, 'step_size': 10})],
)
def test_hashnet_loss_matches_loop(multi_label, step, kwargs):
  u, labels = loss_checks.random_batch(0, multi_label=multi_label)
  schedule = {k: v for k, v in kwargs.items() if k != 'alpha'}
  beta = release_beta(step, **schedule)
  loss_checks.assert_matches_loop(
    lambda u, l, t: hashnet.hashnet_loss(outputs={'hash': u}, labels=l, step=t, **kwargs)[
      0
    ],
    lambda u, l, t: loop_hashnet_loss(u, l, beta, kwargs.get('alpha')),
    u,
    labels,
    jnp.int32(step),
  )


@pytest.mark.parametrize('step', [0, 1, 198, 199, 200, 398, 399, 1000, 9999])
def test_hashnet_beta_follows_the_release(step):
  beta = jax.jit(hashnet.hashnet_beta)(jnp.int32(step))
  np.testing.assert_allclose(beta, release_beta(step), rtol=1e-6)


def test_hashnet_beta_values():
  got = [float(hashnet.hashnet_beta(s)) for s in (0, 198, 199, 399)]
  np.testing.assert_allclose(got, [1.0, 1.0, math.sqrt(2.0), math.sqrt(3.0)], rtol=1e-6)
  u, labels = loss_checks.random_batch(1)
  _, aux = hashnet.hashnet_loss(outputs={'hash': u}, labels=labels, step=jnp.int32(399))
  np.testing.assert_allclose(aux['beta'], math.sqrt(3.0), rtol=1e-6)


def test_hashnet_batch_of_one_kind_of_pair():
  u, _ = loss_checks.random_batch(3, n=4)
  same = jnp.ones((4, 1))
  loss, _ = hashnet.hashnet_loss(outputs={'hash': u}, labels=same, step=0)
  h = jnp.tanh(u)
  theta = (10.0 / u.shape[1]) * (h @ h.T)
  mask = 1.0 - jnp.eye(4)
  want = jnp.sum((jax.nn.softplus(theta) - theta) * mask) / 12.0
  np.testing.assert_allclose(loss, want, rtol=1e-6)


@pytest.mark.parametrize('value', [0.0, 1.0, -1.0, 1e4, -1e4])
@pytest.mark.parametrize('step', [0, 10**6])
def test_hashnet_loss_finite_at_edges(value, step):
  u = jnp.full((4, 12), value, jnp.float32)
  labels = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
  fn = lambda u: hashnet.hashnet_loss(outputs={'hash': u}, labels=labels, step=step)[0]
  loss_checks.assert_finite(fn, u)
