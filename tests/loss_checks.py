"""What the losses' tests share: a random batch, a loss checked against its reference
written pair by pair (value and gradients), and finiteness at the edges."""

from collections.abc import Callable
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def random_batch(seed, n=7, k=6, c=3, scale=1.0, multi_label=False, label_rate=0.4):
  """(u [n, k], labels [n, c]) as float32: u standard normal times `scale`; labels one
  class each, or with `multi_label` each class with probability `label_rate`."""
  rng = np.random.default_rng(seed)
  u = rng.normal(size=(n, k)) * scale
  if multi_label:
    labels = (rng.random((n, c)) < label_rate).astype(np.float32)
  else:
    labels = np.eye(c, dtype=np.float32)[rng.integers(0, c, size=n)]
  return jnp.asarray(u, jnp.float32), jnp.asarray(labels)


def assert_matches_loop(
  loss: Callable,
  loop: Callable,
  *args,
  argnums: Sequence[int] = (0,),
  rtol: float = 1e-5,
  grad_rtol: float = 1e-4,
  grad_atol: float = 1e-7,
) -> None:
  """`loss(*args)`, jitted, equals `loop(*args)`, and so do their gradients in each
  argument of `argnums`."""
  fn = jax.jit(loss)
  np.testing.assert_allclose(fn(*args), loop(*args), rtol=rtol)
  for arg in argnums:
    np.testing.assert_allclose(
      jax.grad(fn, argnums=arg)(*args),
      jax.grad(loop, argnums=arg)(*args),
      rtol=grad_rtol,
      atol=grad_atol,
    )


def assert_finite(loss: Callable, *args, argnums: Sequence[int] = (0,)) -> None:
  """`loss(*args)` and its gradients in each argument of `argnums` are finite."""
  assert np.isfinite(float(loss(*args)))
  for arg in argnums:
    assert np.all(np.isfinite(np.asarray(jax.grad(loss, argnums=arg)(*args))))
