"""Tests of the training and evaluation transforms, and of the model input made from
them on the device."""

import jax
import numpy as np
from PIL import Image
import pytest

from dahjax.data import pipeline


def photo(h=300, w=400, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_resize_shorter_keeps_aspect_ratio():
  out = pipeline.resize_shorter(photo(300, 400), 256)
  assert out.shape == (256, 341, 3)
  out = pipeline.resize_shorter(photo(500, 260), 256)
  assert out.shape == (492, 256, 3)
  same = photo(256, 300)
  assert pipeline.resize_shorter(same, 256) is same


def assert_close_to_window(got, resized, top, left, size):
  """`got` is resized[top:top+size, left:left+size] up to PIL's 8-bit rounding (at
  most 1 apart), and not the window one pixel over."""
  want = resized[top : top + size, left : left + size]
  assert got.shape == want.shape and got.dtype == np.uint8
  diff = np.abs(got.astype(int) - want.astype(int))
  assert diff.max() <= 1 and diff.mean() < 0.1, (diff.max(), diff.mean())
  shifted = resized[top + 1 : top + 1 + size, left : left + size]
  if shifted.shape == got.shape:
    assert np.abs(got.astype(int) - shifted.astype(int)).mean() > 1


@pytest.mark.parametrize(
  'h, w',
  [(300, 400), (500, 260), (375, 500), (180, 240), (256, 300), (1024, 683)],
)
def test_resized_window_matches_a_window_of_the_whole_resize(h, w):
  img = np.asarray(Image.fromarray(photo(h, w)).resize((w // 4, h // 4)).resize((w, h)))
  resized = pipeline.resize_shorter(img, 256)
  assert resized.shape[:2] == pipeline.shorter_side_shape(h, w, 256)
  rng = np.random.default_rng(h * w)
  for _ in range(4):
    top = int(rng.integers(0, resized.shape[0] - 224 + 1))
    left = int(rng.integers(0, resized.shape[1] - 224 + 1))
    got = pipeline.resized_window(img, 256, top, left, 224)
    assert_close_to_window(got, resized, top, left, 224)
  if min(h, w) == 256:  # Nothing to resize: an exact crop.
    np.testing.assert_array_equal(
      pipeline.resized_window(img, 256, 5, 7, 224), img[5:229, 7:231]
    )


def test_imagenet_eval_is_central_crop_of_resize_256():
  img = photo()
  got = pipeline.eval_transform(img, transform='imagenet_crop', image_size=224)
  resized = np.asarray(Image.fromarray(img).resize((341, 256), Image.BILINEAR))
  assert_close_to_window(got, resized, (256 - 224) // 2, (341 - 224) // 2, 224)


def test_imagenet_train_crop_is_a_window_of_the_resized_image():
  img = photo()
  resized = pipeline.resize_shorter(img, 256)
  seen_flip, seen_windows = set(), set()
  for seed in range(12):
    out, flip = pipeline.train_transform(
      img,
      transform='imagenet_crop',
      image_size=224,
      random_flip=False,
      rng=np.random.default_rng(seed),
    )
    again, flip_again = pipeline.train_transform(
      img,
      transform='imagenet_crop',
      image_size=224,
      random_flip=False,
      rng=np.random.default_rng(seed),
    )
    np.testing.assert_array_equal(out, again)  # A function of the rng alone.
    assert flip == flip_again
    # The window the rng draws (top, then left, then the flip).
    rng = np.random.default_rng(seed)
    top = rng.integers(0, resized.shape[0] - 224 + 1)
    left = rng.integers(0, resized.shape[1] - 224 + 1)
    assert flip == bool(rng.random() < 0.5)
    assert_close_to_window(out, resized, top, left, 224)
    seen_flip.add(flip)
    seen_windows.add((int(top), int(left)))
  assert seen_flip == {False, True}  # Flips happen, and not always.
  assert len(seen_windows) > 6  # The window moves.


def test_cifar_crop_pads_four_pixels():
  img = photo(32, 32)
  outs = [
    pipeline.train_transform(
      img,
      transform='cifar_crop',
      image_size=32,
      random_flip=False,
      rng=np.random.default_rng(s),
    )
    for s in range(20)
  ]
  padded = np.pad(img, ((4, 4), (4, 4), (0, 0)))
  for out, _ in outs:
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert any(
      np.array_equal(out, padded[t : t + 32, l : l + 32])
      for t in range(9)
      for l in range(9)
    )
  assert any(np.any(o == 0) for o, _ in outs)  # Some crops show the zero padding.
  assert {f for _, f in outs} == {False, True}
  np.testing.assert_array_equal(
    pipeline.eval_transform(img, transform='cifar_crop', image_size=32), img
  )


def test_resize_transform_flip_follows_rng_and_flag():
  img = photo(32, 32)
  out, flip = pipeline.train_transform(
    img, transform='resize', image_size=32, random_flip=False, rng=np.random.default_rng(0)
  )
  np.testing.assert_array_equal(out, img)
  assert flip is False
  flips = {
    pipeline.train_transform(
      img, transform='resize', image_size=32, random_flip=True, rng=np.random.default_rng(s)
    )[1]
    for s in range(20)
  }
  assert flips == {False, True}


def test_model_input_on_the_device_equals_the_float_path_on_the_host():
  """uint8 / 255 and the mirror image, computed in the jitted step, are the float32
  images the host made before (x.astype(float32) / 255, then [:, ::-1]) to within one
  rounding step (XLA's CPU division is not always correctly rounded)."""
  images = np.stack([photo(32, 32, seed=s) for s in range(6)])
  images[0, 0, 0] = [0, 255, 128]  # The extremes.
  flip = np.array([True, False, True, True, False, False])
  host = images.astype(np.float32) / 255.0
  host = np.stack([h[:, ::-1] if f else h for h, f in zip(host, flip)])
  device = np.asarray(jax.jit(pipeline.model_input)(images, flip))
  assert device.dtype == np.float32
  np.testing.assert_array_max_ulp(device, host, maxulp=1)
  assert np.all((host == 0) == (device == 0)) and np.all((host == 1) == (device == 1))
  # Float images pass unchanged; without flags nothing is mirrored.
  np.testing.assert_array_equal(np.asarray(jax.jit(pipeline.model_input)(host)), host)


def test_unknown_transform():
  with pytest.raises(ValueError, match='cifar_crop, imagenet_crop, resize'):
    pipeline.eval_transform(photo(), transform='random_erase', image_size=32)
  with pytest.raises(ValueError, match='cifar_crop, imagenet_crop, resize'):
    pipeline.train_transform(
      photo(), transform='x', image_size=32, random_flip=False, rng=np.random.default_rng(0)
    )
