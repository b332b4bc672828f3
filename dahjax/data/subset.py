"""Copies a per-class random subset of an image folder (`root/<split>/<class>/*`).

The project's quick-start data were made with:

  python -m dahjax.data.subset --src ../shared/data/cifar10_jpeg \
      --dst dahjax/data/assets/cifar10_quickstart --per_class train=200,test=50
"""

import os
import shutil

from absl import app
from absl import flags
import numpy as np

from dahjax.data import sources

_SRC = flags.DEFINE_string('src', None, 'Image folder root to draw from.', required=True)
_DST = flags.DEFINE_string('dst', None, 'Where to write the subset.', required=True)
_PER_CLASS = flags.DEFINE_string(
  'per_class', 'train=200,test=50', 'Images per class for each split, split=count,...'
)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the draw.')


def copy_subset(src: str, dst: str, per_class: dict[str, int], seed: int) -> int:
  """Copies `per_class[split]` random images of each class of each split; returns the count."""
  rng = np.random.default_rng(seed)
  copied = 0
  for split, n in per_class.items():
    source = sources.ImageFolderSource(src, split)
    classes = np.argmax(source.labels, axis=1)
    for c in range(len(source.class_names)):
      members = np.flatnonzero(classes == c)
      for i in np.sort(rng.choice(members, size=min(n, len(members)), replace=False)):
        target = os.path.join(dst, source.ids[i])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(src, source.ids[i]), target)
        copied += 1
  return copied


def main(argv):
  del argv
  per_class = {k: int(v) for k, v in (p.split('=') for p in _PER_CLASS.value.split(','))}
  n = copy_subset(_SRC.value, _DST.value, per_class, _SEED.value)
  print(f'Copied {n} images to {_DST.value}.')


if __name__ == '__main__':
  app.run(main)
