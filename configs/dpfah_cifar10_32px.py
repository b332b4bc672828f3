"""DPFAH on CIFAR-10 at 32 px with the CIFAR stem: the variant practical on a CPU.

The DPFAH protocol and losses of configs/dpfah_cifar10.py, but ResNet18 with a 3x3/1
stem and no max pool on the original 32x32 images (pad-4 random crops and flips in
training), trained from scratch with RMSProp at 1e-4. (5e-5 is the paper's rate for
ImageNet-pretrained weights. At 1e-3 the network learned no faster at first and, at step 570,
fell back to the loss it had at step 230 when the quantization term returned; at 1e-4 such
events are smaller. docs/results.md has the measured run.)

  python -m dahjax.main --config configs/dpfah_cifar10_32px.py --workdir runs/dpfah32_48 \
      --config.data.data_dir=<cifar10 folder>

Paper (224 px, ImageNet-pretrained, 48 bits): mAP@ALL 0.8522; this variant sees neither
ImageNet nor 224 px images, so expect less: 0.182 after 25 epochs (59 minutes on a
2-core CPU, --config.num_epochs=25).
"""

from configs import dpfah_cifar10


def get_config():
  config = dpfah_cifar10.get_config()
  config.unlock()
  config.model.stem = 'cifar'
  config.data.image_size = 32
  config.data.transform = 'cifar_crop'
  config.optimizer.learning_rate = 1e-4
  config.num_epochs = 60
  config.eval.batch_size = 500
  return config.lock()
