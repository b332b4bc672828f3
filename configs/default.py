"""Default configuration: DAH (ResNet30 + CBAM, 48 bits) on CIFAR-10 under the DAH protocol.

Every field any config uses is defined here, once; every other config imports this one
and changes only what differs. Override any field on the command line, e.g.
`--config.model.bits=24 --config.num_epochs=10`. `data.data_dir` is empty: pass the
data's location (`--config.data.data_dir=...`).
"""

import ml_collections

from dahjax import losses


def _loss_settings(name: str) -> dict:
  return {
    key: ml_collections.FieldReference(None, field_type=losses.setting_type(name, key))
    if value is None
    else value
    for key, value in losses.settings(name).items()
  }


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.model_name = 'dah_resnet30'
  # The fields of every model; each model takes those it declares.
  config.model = ml_collections.ConfigDict(
    dict(
      bits=48,
      num_classes=10,
      # dah_resnet30: 'cbam' (DAH) or 'none' (NoneA-DAH); dpfah_resnet18: where PFA sits,
      # 'stem', 'every_block' or 'none'.
      attention='cbam',
      # dah_resnet30: 'linear' replaces the shrink sigmoid with an unconstrained layer (a
      # diagnostic of what the shrink sigmoid costs the classifier; not DAH).
      hash_layer='shrink_sigmoid',
      # dah_resnet30: what the classifier reads, 'codes' (DAH), 'centered' 4 (h - 1/2)
      # (not in the paper; dahjax/models/heads.py says why it trains faster) or
      # 'sign_codes' (the +-1 codes, no bias, straight-through: GreedyHash's head).
      classifier_input='codes',
      # dsh_cnn, dpfah_resnet18: 'shrink_sigmoid' ends the hash layer in DAH's eq. 1
      # (for DAH's loss).
      hash_activation='none',
      # dsh_cnn, dpfah_resnet18: what the classifier reads, 'features', 'codes' (the
      # hash layer: DAH) or 'sign_codes' (sgn(u), no bias, the straight-through
      # gradient: GreedyHash).
      classifier_reads='features',
      stem='imagenet',  # dpfah_resnet18: 'cifar' is a 3x3/1 stem for 32 px inputs.
      pfa_lambda=1e-4,  # dpfah_resnet18: lambda of PFA (DPFAH eq. 8).
      # dpfah_resnet18: 'batchnorm' centres each bit of the hash layer on the batch (not
      # in DPFAH; dahjax/models/heads.py says why it helps training from scratch).
      hash_norm='none',
      conv_impl='auto',  # 'auto': shifted slices on the CPU, XLA's conv elsewhere.
      # Computation dtype: 'bfloat16' on accelerators computes in bfloat16 with float32
      # parameters, optimiser state and losses.
      dtype='float32',
      # torchvision's ImageNet ResNet18 weights (.npz, .safetensors, .pth) to start
      # dpfah_resnet18's backbone from; '': random initialisation.
      pretrained='',
      # A training workdir to start from (its latest checkpoint): every parameter and
      # BatchNorm statistic whose name and shape match is copied, the others (a hash
      # layer of another code length) keep their fresh initialisation. Only the first
      # start of a run reads it; a resumed run continues from its own checkpoints.
      init_from='',
    )
  )

  config.loss_name = 'dah'
  # The settings of every loss, one dict per loss (`loss[loss_name]` is the run's), with
  # the defaults of the loss's signature: its paper's values, cited in its docstring
  # (dahjax/losses/<name>.py). A default of None is the loss's own rule (e.g. DAH's
  # threshold bits / 4.8, DSH's margin 2 * bits).
  config.loss = ml_collections.ConfigDict(
    {name: _loss_settings(name) for name in losses.names()}
  )
  # Raise the weight of the hash terms linearly from 0 to 1 over this many steps, so the
  # classification term trains the backbone first (0: the paper's constant weight; not in
  # DPFAH; for the losses with a `hash_weight`).
  config.loss.hash_warmup_steps = 0

  config.optimizer = ml_collections.ConfigDict(
    dict(
      name='adam',
      learning_rate=1e-3,
      weight_decay=0.0,
      b1=0.9,
      b2=0.999,  # adam
      decay=0.99,
      eps=1e-8,  # rmsprop: PyTorch's alpha (decay) and eps.
      grad_clip_norm=0.0,  # > 0: clip the gradients' global norm first (not a paper's).
      momentum=0.9,  # sgd.
      bias_lr_mult=1.0,  # sgd: the biases' rate is this times learning_rate.
      decay_biases=True,  # sgd: whether weight_decay applies to the biases too.
      # Top-level parameter modules (comma-separated, e.g. 'hash') whose rate is
      # new_layers_lr_mult times the others' (a new layer fine-tuned faster, DSH Sec. 4.2).
      new_layers='',
      new_layers_lr_mult=1.0,
      # 'constant'; 'step': x lr_decay_factor every lr_decay_every_steps steps;
      # 'multistep': x lr_decay_factor at each of lr_decay_at_steps; or 'cosine': down
      # to lr_end_factor x learning_rate at the run's last step. Any of them after a
      # linear warm-up from 0 over lr_warmup_steps steps (not a paper's).
      lr_schedule='constant',
      lr_decay_every_steps=0,
      lr_decay_at_steps=(),
      lr_decay_factor=0.1,
      lr_end_factor=0.0,
      lr_warmup_steps=0,
    )
  )

  config.data = ml_collections.ConfigDict(
    dict(
      # 'image_folder', 'tfds', 'imagenet100' or 'list_file' (dahjax.data.sources).
      source='image_folder',
      data_dir='',  # Where the data is; its layout depends on the source.
      tfds_name='cifar10',
      tfds_download=False,  # Let tfds download and prepare tfds_name.
      protocol='dah_cifar10',
      split_seed=0,  # Seed of per-class split draws.
      sampler='class_balanced',  # 'class_balanced' or 'random'.
      image_size=32,
      # 'resize' (to image_size), 'imagenet_crop' (resize the shorter side to
      # resize_size, random crop and flip; central crop to evaluate) or 'cifar_crop'
      # (pad 4, random crop and flip).
      transform='resize',
      resize_size=256,
      random_flip=False,  # With transform='resize'.
      # source='list_file': 'split=path,...' (paths relative to data_dir; empty:
      # <data_dir>/<split>.txt) and an optional file of class names.
      list_files='',
      class_names_file='',
      imagenet100_config='resized256',  # source='imagenet100': 'resized256' or 'original'.
      num_threads=4,  # Input threads of each process (of each worker with num_workers).
      # > 0: images are decoded in this many worker processes (grain's mp_prefetch), what
      # an accelerator host needs; 0: in threads of the training process.
      num_workers=0,
      # An unreadable image: 'skip' replaces it in training and leaves it out of
      # evaluation, logging it; 'error' stops at the first one (dahjax/data/bad_images.py).
      bad_images='skip',
    )
  )

  config.batch_size = 20  # 2n for n = 10 classes.
  config.num_epochs = 50
  config.num_train_steps = -1  # > 0 overrides num_epochs.

  config.log_every_steps = 50
  # Learning curve: every this many steps, the mAP of the current parameters on
  # eval.curve_queries fixed queries against the whole database (0: none; the run's
  # reported numbers are always the full evaluation at its end).
  config.eval_every_steps = 0
  # Stop at the learning curve's plateau: once `evaluations` consecutive points have
  # gained no more than `min_delta` mAP over the best point before them (0: train every
  # step). The run then reports the full evaluation of that step's checkpoint.
  config.plateau = ml_collections.ConfigDict(dict(evaluations=0, min_delta=0.005))
  config.checkpoint_every_steps = 1000
  config.max_checkpoints_to_keep = 3
  # Several processes: every this many steps they agree whether any received SIGTERM
  # (one small collective), then all checkpoint at that step and stop.
  config.preemption_check_every_steps = 10

  config.eval = ml_collections.ConfigDict(
    dict(
      batch_size=500,
      chunk_size=0,  # Rows per forward pass on each device; 0: 128 on the CPU, all else.
      topk=ml_collections.FieldReference(None, field_type=int),  # None: the protocol's K.
      precision_at=1000,
      radius=2,
      curve_queries=1000,  # Queries of the learning curve (a fixed, seeded subset).
    )
  )
  return config.lock()
