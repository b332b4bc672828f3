"""DPFAH ablation (paper's Table 5, first row): ResNet18 alone, no PFA, L1 only.

  python -m dahjax.main --config configs/dpfah_ablation_resnet18.py --workdir runs/abl_r18 \\
      --config.model.pretrained=resnet18-f37072fd.pth

Paper (CIFAR-10, 48 bits, mAP@ALL): 0.8129 (with PFA: 0.8424, configs/dpfah_ablation_pfa.py;
with PFA, L2 and L3: 0.8522, configs/dpfah_cifar10.py). Add the overrides of
configs/dpfah_cifar10_32px.py (--config.model.stem=cifar --config.data.image_size=32
--config.data.transform=cifar_crop --config.optimizer.learning_rate=1e-3) for a CPU run.
"""

from configs import dpfah_cifar10


def get_config():
  config = dpfah_cifar10.get_config()
  config.unlock()
  config.model.attention = 'none'
  config.loss.dpfah.eta = 0.0
  config.loss.dpfah.zeta = 0.0
  return config.lock()
