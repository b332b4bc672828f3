"""DPFAH on CIFAR-10 at 224 px under the DPFAH protocol (DPFAH "Datasets", Table 6).

ResNet18 with the ImageNet stem and parameter-free attention after the stem, a 48-bit
hash layer and a classifier beside it; L = L1 + 10 L2 + 0.1 L3; RMSProp 5e-5 with weight
decay 1e-5; batch 128. Images are resized to 256 and cropped to 224 (random crop and
flip in training, central crop in evaluation). 100 queries and 500 training images per
class; the other 54,000 images form the database; mAP@ALL.

  python -m dahjax.main --config configs/dpfah_cifar10.py --workdir runs/dpfah_cifar10_48 \\
      --config.data.data_dir=<cifar10 folder> \\
      --config.model.pretrained=resnet18-f37072fd.pth   # torchvision's ImageNet weights
  # other code lengths: --config.model.bits=16/32/64

Paper (mAP@ALL, 16/32/48/64 bits, ImageNet-pretrained): 0.8382 / 0.8445 / 0.8522 / 0.8549.
The paper does not state its number of epochs. Without pretrained weights, 224 px on a
CPU is slow: configs/dpfah_cifar10_32px.py is the CPU-sized variant.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.unlock()
  config.model_name = 'dpfah_resnet18'
  config.model.attention = 'stem'  # One PFA after the stem (Fig. 1).
  config.loss_name = 'dpfah'
  config.optimizer.name = 'rmsprop'
  config.optimizer.learning_rate = 5e-5
  config.optimizer.weight_decay = 1e-5
  config.data.protocol = 'dpfah_cifar10'
  config.data.sampler = 'random'
  config.data.image_size = 224
  config.data.transform = 'imagenet_crop'
  config.batch_size = 128
  config.num_epochs = 100
  config.checkpoint_every_steps = 390  # 10 epochs of 39 steps.
  config.log_every_steps = 10
  config.eval.batch_size = 256
  return config.lock()
