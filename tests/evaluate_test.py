"""Tests of the encoder: chunked forward passes give the codes of one pass."""

import jax
import numpy as np

from dahjax import evaluate
from dahjax import models
from dahjax import parallel
from tests.conftest import random_images


def test_chunked_encoder_equals_one_pass():
  model = models.create_model('dah_resnet30', bits=8, num_classes=3)
  images = random_images(10)
  variables = jax.jit(model.init)(jax.random.key(0), images[:1])
  mesh = parallel.create_mesh()
  whole = evaluate.make_encoder(model, mesh, None)(variables, images)
  # 10 rows in chunks of 4: two full chunks and one padded.
  chunked = evaluate.make_encoder(model, mesh, 4)(variables, images)
  assert chunked.shape == (10, 8) and chunked.dtype == np.uint8
  np.testing.assert_array_equal(chunked, whole)
  hashes = model.apply(variables, images)['hash']
  np.testing.assert_array_equal(whole, np.asarray(hashes) > 0.5)


def test_encode_chunk_size():
  assert evaluate.encode_chunk_size(64) == 64
  assert evaluate.encode_chunk_size(0) == (128 if jax.default_backend() == 'cpu' else None)
