"""DSH on CIFAR-10: its small CNN trained from scratch on 32x32 images, its loss, its
solver and its evaluation (Liu et al., "Deep Supervised Hashing for Fast Image
Retrieval", CVPR 2016, Sec. 3.3 and 4.1-4.2).

  python -m dahjax.main --config configs/dsh_cifar10.py --workdir runs/dsh_12 \
      --config.data.data_dir=<cifar10 folder> --config.model.bits=12

Settings (paper Sec. 3.3; the authors' release settles what the paper leaves open):
batch 200 of 20 images per class (the release's HashingImageData layer), random
horizontal flips, SGD with momentum 0.9, weight decay 0.004 on the weights only, the
biases at twice the rate, learning rate 1e-3 multiplied by 0.6 every 20,000 iterations,
150,000 iterations; m = 2k, alpha = 0.01. Evaluation: the 10,000 test images are both
the queries and the database (protocol dsh_cifar10), codes sign(b), mAP over the whole
ranking.

Paper (Table 3, CIFAR-10 mAP): 12 bits 0.6157; 24 bits 0.6512, 36 bits 0.6607 and
48 bits 0.6755 fine-tuned from the 12-bit network (trained from scratch: 0.6524,
0.6433, 0.6213 at 24, 36, 48 bits, Table 2).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.unlock()
  config.model_name = 'dsh_cnn'
  config.model.bits = 12
  config.loss_name = 'dsh'
  config.data.protocol = 'dsh_cifar10'
  config.data.image_size = 32
  config.data.random_flip = True
  config.batch_size = 200
  config.num_train_steps = 150_000
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.004
  config.optimizer.decay_biases = False
  config.optimizer.bias_lr_mult = 2.0
  config.optimizer.lr_schedule = 'step'
  config.optimizer.lr_decay_every_steps = 20_000
  config.optimizer.lr_decay_factor = 0.6
  config.checkpoint_every_steps = 2_500  # Every 10 epochs of 250 steps.
  config.log_every_steps = 250
  return config.lock()
