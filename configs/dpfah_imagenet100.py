"""DPFAH on ImageNet-100 (DPFAH "Datasets", Table 6): the HashNet protocol, mAP@1000.

ResNet18 (ImageNet stem) + PFA after the stem, 100 classes, RMSProp 5e-5 with weight
decay 1e-5, batch 128, 224 px crops of images resized to 256. Train on the 13,000
listed images (130 per class), query with the 5,000 listed validation images, retrieve
from every training image of the 100 classes (about 128,500).

ImageNet itself comes from your own ILSVRC2012 copy, built once into a TFDS data set
(only the 100 classes are written; no TensorFlow needed):

  python -m dahjax.data.imagenet100 --manual_dir=/path/to/ilsvrc2012 \\
      --data_dir=~/tensorflow_datasets
  python -m dahjax.main --config configs/dpfah_imagenet100.py --workdir runs/dpfah_in100_64 \\
      --config.model.bits=64 --config.model.pretrained=resnet18-f37072fd.pth \\
      --config.data.data_dir=~/tensorflow_datasets

`/path/to/ilsvrc2012` holds ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, or the
extracted train/<wnid>/*.JPEG and val/*.JPEG folders.

Paper (mAP@1000, 16/32/48/64 bits, ImageNet-pretrained): 0.6420 / 0.7009 / 0.7212 / 0.7795.
"""

from configs import dpfah_cifar10


def get_config():
  config = dpfah_cifar10.get_config()
  config.unlock()
  config.model.num_classes = 100
  config.data.source = 'imagenet100'
  config.data.data_dir = '~/tensorflow_datasets'
  config.data.protocol = 'imagenet100'
  config.num_epochs = 100
  config.checkpoint_every_steps = 1000  # About 10 epochs of 101 steps.
  config.log_every_steps = 20
  config.eval.batch_size = 256
  config.eval.precision_at = 1000
  return config.lock()
