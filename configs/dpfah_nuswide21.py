"""DPFAH on NUS-WIDE, 21 most frequent labels (DPFAH "Datasets", Table 6): multi-label, mAP@5000.

ResNet18 (ImageNet stem) + PFA, 21 labels (a pair is similar when it shares a label),
sigmoid cross-entropy as L3, RMSProp 5e-5 with weight decay 1e-5, batch 128, 224 px.
From all listed images: 100 queries per label and 500 training images per label (drawn
with `data.split_seed`, saved in the workdir); the database is every image that is not
a query.

Images and labels come from a list file in the field's format, one image a line:
`relative/path.jpg 0 1 0 ... 0` (21 labels), paths relative to data_dir:

  python -m dahjax.main --config configs/dpfah_nuswide21.py --workdir runs/dpfah_nus_48 \\
      --config.data.data_dir=/data/nus_wide --config.data.list_files=all=nuswide_21.txt \\
      --config.model.pretrained=resnet18-f37072fd.pth

Paper (mAP@5000, 16/32/48/64 bits, ImageNet-pretrained): 0.8298 / 0.8490 / 0.8541 / 0.8580.
"""

from configs import dpfah_cifar10


def get_config():
  config = dpfah_cifar10.get_config()
  config.unlock()
  config.model.num_classes = 21
  config.data.source = 'list_file'
  config.data.list_files = 'all=nuswide_21.txt'
  config.data.protocol = 'nuswide21'
  config.data.sampler = 'random'
  config.num_epochs = 100
  config.checkpoint_every_steps = 820  # About 10 epochs of 82 steps.
  config.eval.batch_size = 256
  config.eval.precision_at = 1000
  return config.lock()
