"""The papers' published numbers, beside which `python -m dahjax.compare --paper` puts ours.

Keyed by (method, protocol) as evaluation names them (`metrics.json`'s `method` and
`protocol`), then by code length; each entry holds the metrics the paper reports under the
names dahjax uses. Sources: DAH (Li et al., IEEE Access 2020) Tables 2, 3 and 5; DPFAH
(Scientific Reports 2022) Tables 5 and 6. Both papers train on GPUs for an unstated number
of epochs; DPFAH starts from ImageNet-pretrained ResNet18 at 224 px.
"""

_DAH_MAP = (0.9251, 0.9219, 0.9267, 0.9231)
_DAH_P1000 = (0.9159, 0.9117, 0.9153, 0.9152)
_DAH_BALANCE = (1.4766, 1.0603, 1.0429, 1.0134)
_NONEA_MAP = (0.9208, 0.9206, 0.9235, 0.9189)
_NONEA_P1000 = (0.9125, 0.9124, 0.9138, 0.9117)
_NONEA_BALANCE = (1.3142, 1.0323, 1.0595, 1.0328)
_DAH_BITS = (12, 24, 36, 48)
_DPFAH_BITS = (16, 32, 48, 64)

PAPER_RESULTS: dict[tuple[str, str], dict[int, dict[str, float]]] = {
  ('DAH', 'dah_cifar10'): {
    b: {'map': m, 'precision_at_1000': p, 'bit_balance': s}
    for b, m, p, s in zip(_DAH_BITS, _DAH_MAP, _DAH_P1000, _DAH_BALANCE)
  },
  ('NoneA-DAH', 'dah_cifar10'): {
    b: {'map': m, 'precision_at_1000': p, 'bit_balance': s}
    for b, m, p, s in zip(_DAH_BITS, _NONEA_MAP, _NONEA_P1000, _NONEA_BALANCE)
  },
  ('DPFAH', 'dpfah_cifar10'): {
    b: {'map': m} for b, m in zip(_DPFAH_BITS, (0.8382, 0.8445, 0.8522, 0.8549))
  },
  ('DPFAH', 'nuswide21'): {
    b: {'map': m} for b, m in zip(_DPFAH_BITS, (0.8298, 0.8490, 0.8541, 0.8580))
  },
  ('DPFAH', 'imagenet100'): {
    b: {'map': m} for b, m in zip(_DPFAH_BITS, (0.6420, 0.7009, 0.7212, 0.7795))
  },
  ('DFAH-1 (ResNet18, L1)', 'dpfah_cifar10'): {48: {'map': 0.8129}},
  ('DFAH-2 (ResNet18 + PFA, L1)', 'dpfah_cifar10'): {48: {'map': 0.8424}},
}
