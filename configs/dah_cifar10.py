"""DAH on CIFAR-10 under the paper's protocol (DAH Sec. IV.A): the paper's Tables 2-5.

The data is CIFAR-10 as an image folder (train/<class>/*.jpg with the 50,000 training
images, test/<class>/*.jpg with the 10,000 test images). Train on the 50,000 training
images (class-balanced batches of 20, Adam 1e-3), query with the 10,000 test images
against a database of the 50,000 training images.

  python -m dahjax.main --config configs/dah_cifar10.py --workdir runs/dah_cifar10_12 \
      --config.data.data_dir=<cifar10 folder> --config.model.bits=12
  # NoneA-DAH (no CBAM): add --config.model.attention=none

Paper (mAP@ALL, 12/24/36/48 bits): DAH 0.9251 / 0.9219 / 0.9267 / 0.9231,
NoneA-DAH 0.9208 / 0.9206 / 0.9235 / 0.9189; precision of the top 1,000:
DAH 0.9159 / 0.9117 / 0.9153 / 0.9152. The paper does not state its number of epochs.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.unlock()
  config.num_epochs = 50
  config.checkpoint_every_steps = 2500  # One epoch of 2,500 steps.
  return config.lock()
