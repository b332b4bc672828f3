"""Why DPFAH from scratch collapses: its codes at initialisation.

  python results/dpfah_search/init_codes.py

For configs/dpfah_cifar10_32px.py at 48 bits, on 128 images of the shipped CIFAR-10
subset, at three random initialisations, in training mode (BatchNorm on the batch):
the mean length of the relaxed codes c = clip(u, -1, 1), how long the batch's mean code
is against them (1: every image has the same code), and the cosine between the descent
direction of L1 and -c (1: L1's gradient only shrinks the codes), with the paper's hash
layer (model.hash_norm='none') and with the layer batch-normalised ('batchnorm').
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from configs import dpfah_cifar10_32px  # pylint: disable=wrong-import-position
from configs import quickstart  # pylint: disable=wrong-import-position
from dahjax import losses  # pylint: disable=wrong-import-position
from dahjax import state  # pylint: disable=wrong-import-position
from dahjax.data import sources  # pylint: disable=wrong-import-position
from dahjax.models import heads  # pylint: disable=wrong-import-position


def main():
  source = sources.ImageFolderSource(quickstart.QUICKSTART_DATA, 'train')
  pick = np.random.default_rng(0).choice(len(source), 128, replace=False)
  images = jnp.asarray(np.stack([source.load_image(i) for i in pick]))
  labels = jnp.asarray(source.labels[pick], jnp.float32)
  similarity = losses.pairwise_similarity(labels)
  print(
    '| hash_norm | seed | mean code length | batch mean code / mean length | cos(-grad L1, -c) |'
  )
  print('|---|---|---|---|---|')
  for norm in ('none', 'batchnorm'):
    config = dpfah_cifar10_32px.get_config()
    config.unlock()
    config.model.bits = 48
    config.model.hash_norm = norm
    model = state.create_model(config)
    for seed in range(3):
      variables = state.init_variables(jax.random.key(seed), config, model)
      out, _ = model.apply(variables, images, train=True, mutable=['batch_stats'])
      c = heads.clip_codes(out['hash'])
      length = jnp.linalg.norm(c, axis=1).mean()
      common = jnp.linalg.norm(c.mean(axis=0)) / length
      grad = jax.grad(
        lambda c: losses.dpfah_likelihood_loss(codes=c, similarity=similarity)
      )(c)
      cos = jnp.sum(grad * c) / (jnp.linalg.norm(grad) * jnp.linalg.norm(c))
      print(f'| {norm} | {seed} | {length:.2f} | {common:.2f} | {cos:+.2f} |', flush=True)


if __name__ == '__main__':
  main()
