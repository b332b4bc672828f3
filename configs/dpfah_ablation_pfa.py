"""DPFAH ablation (paper's Table 5, second row): ResNet18 + PFA, L1 only (no L2, L3).

  python -m dahjax.main --config configs/dpfah_ablation_pfa.py --workdir runs/abl_pfa \\
      --config.model.pretrained=resnet18-f37072fd.pth

Paper (CIFAR-10, 48 bits, mAP@ALL): 0.8424 (ResNet18 alone: 0.8129; the full method,
configs/dpfah_cifar10.py: 0.8522).
"""

from configs import dpfah_cifar10


def get_config():
  config = dpfah_cifar10.get_config()
  config.unlock()
  config.loss.dpfah.eta = 0.0
  config.loss.dpfah.zeta = 0.0
  return config.lock()
