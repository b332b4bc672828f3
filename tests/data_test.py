"""Tests of the data sources, protocols, samplers and pipelines."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from dahjax.data import pipeline
from dahjax.data import protocols
from dahjax.data import sources


def test_image_folder_source(tiny_folder):
  src = sources.ImageFolderSource(tiny_folder, 'train')
  assert src.class_names == ['airplane', 'automobile', 'bird']
  assert len(src) == 24 and src.labels.shape == (24, 3)
  np.testing.assert_array_equal(src.labels.sum(0), [8, 8, 8])
  img = src.load_image(9)
  assert img.shape == (32, 32, 3) and img.dtype == np.uint8
  assert src.ids[9].startswith('train/automobile/')
  with Image.open(os.path.join(tiny_folder, src.ids[9])) as ref:
    np.testing.assert_array_equal(img, np.asarray(ref.convert('RGB')))


def test_missing_or_empty_folder_names_path_and_layout(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'nowhere.*<root>/<split>/<class name>'):
    sources.ImageFolderSource(str(tmp_path / 'nowhere'), 'train')
  os.makedirs(tmp_path / 'train' / 'cat')
  with pytest.raises(FileNotFoundError, match='No images'):
    sources.ImageFolderSource(str(tmp_path), 'train')


def test_unknown_source_and_protocol_list_valid_names():
  with pytest.raises(ValueError, match='image_folder.*tfds'):
    sources.get_source('nope', data_dir='x', split='train')
  with pytest.raises(ValueError, match='dah_cifar10.*dpfah_cifar10'):
    protocols.get_protocol('nope')


def test_tfds_source_without_prepared_data_explains(tmp_path):
  with pytest.raises(FileNotFoundError, match='tfds build cifar10'):
    sources.get_source('tfds', data_dir=str(tmp_path), split='train')


def test_dah_protocol_and_saved_splits(tiny_folder, tmp_path):
  pool = protocols.build_pool('image_folder', tiny_folder, ('train', 'test'))
  splits = protocols.load_or_create_splits(pool, 'dah_cifar10', 0, str(tmp_path))
  assert len(splits['train']) == 24 and len(splits['query']) == 12
  np.testing.assert_array_equal(splits['train'], splits['database'])
  assert all(pool.ids[i].startswith('test/') for i in splits['query'])
  saved = json.load(open(tmp_path / protocols.SPLITS_FILE))
  assert saved['protocol'] == 'dah_cifar10' and len(saved['splits']['query']) == 12
  again = protocols.load_or_create_splits(pool, 'dah_cifar10', 0, str(tmp_path))
  for k in splits:
    np.testing.assert_array_equal(splits[k], again[k])
  with pytest.raises(ValueError, match='fresh workdir'):
    protocols.load_or_create_splits(pool, 'dpfah_cifar10', 0, str(tmp_path))


def test_per_class_split_counts_disjoint_and_seeded():
  labels = np.eye(3, dtype=np.uint8)[np.repeat(np.arange(3), 20)]
  a = protocols.per_class_split(labels, {'query': 2, 'train': 5}, 'database', seed=1)
  b = protocols.per_class_split(labels, {'query': 2, 'train': 5}, 'database', seed=1)
  c = protocols.per_class_split(labels, {'query': 2, 'train': 5}, 'database', seed=2)
  for name, per_class in (('query', 2), ('train', 5), ('database', 13)):
    np.testing.assert_array_equal(labels[a[name]].sum(0), [per_class] * 3)
    np.testing.assert_array_equal(a[name], b[name])
  assert not np.array_equal(a['query'], c['query'])
  everything = np.concatenate(list(a.values()))
  assert len(np.unique(everything)) == 60
  with pytest.raises(ValueError, match='fewer than'):
    protocols.per_class_split(labels, {'query': 15, 'train': 6}, 'database', seed=0)


def test_class_balanced_sampler():
  labels = np.eye(4, dtype=np.uint8)[np.repeat(np.arange(4), [7, 9, 6, 8])]
  indices = np.arange(len(labels))
  sampler = pipeline.make_sampler('class_balanced', labels=labels, indices=indices,
                                  batch_size=8, seed=3)
  assert sampler.steps_per_epoch == 3  # Smallest class: 6 images, 2 per batch.
  seen = []
  for step in range(3):
    batch = sampler.batch_indices(step)
    np.testing.assert_array_equal(labels[batch].sum(0), [2, 2, 2, 2])
    # Interleaved: each half of the batch holds every class once.
    np.testing.assert_array_equal(labels[batch[:4]].sum(0), [1, 1, 1, 1])
    seen.extend(batch)
  assert len(set(seen)) == len(seen)  # No repeats within an epoch.
  assert not np.array_equal(sampler.batch_indices(0), sampler.batch_indices(3))
  again = pipeline.make_sampler('class_balanced', labels=labels, indices=indices,
                                batch_size=8, seed=3)
  np.testing.assert_array_equal(again.batch_indices(4), sampler.batch_indices(4))
  with pytest.raises(ValueError, match='divisible by the 4 classes'):
    pipeline.make_sampler('class_balanced', labels=labels, indices=indices,
                          batch_size=6, seed=0)


def test_random_sampler_and_unknown():
  sampler = pipeline.make_sampler('random', labels=np.eye(2)[[0, 1] * 5],
                                  indices=np.arange(10), batch_size=4, seed=0)
  assert sampler.steps_per_epoch == 2
  both = np.concatenate([sampler.batch_indices(0), sampler.batch_indices(1)])
  assert len(set(both)) == 8
  with pytest.raises(ValueError, match='class_balanced, random'):
    pipeline.make_sampler('nope', labels=None, indices=None, batch_size=4, seed=0)


def test_train_dataset_is_deterministic_and_resumable(tiny_folder):
  pool = protocols.build_pool('image_folder', tiny_folder, ('train', 'test'))
  train = pool.indices_of('train')
  sampler = pipeline.make_sampler('class_balanced', labels=pool.labels, indices=train,
                                  batch_size=6, seed=0)
  kw = dict(image_size=32, random_flip=True, seed=0, num_steps=6)
  full = list(pipeline.train_dataset(pool, sampler, start_step=0, **kw))
  resumed = list(pipeline.train_dataset(pool, sampler, start_step=4, **kw))
  assert len(full) == 6 and len(resumed) == 2
  for a, b in zip(full[4:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  assert full[0]['image'].shape == (6, 32, 32, 3) and full[0]['image'].dtype == np.float32
  assert 0.0 <= full[0]['image'].min() and full[0]['image'].max() <= 1.0
  np.testing.assert_array_equal(full[0]['label'].sum(0), [2, 2, 2])
  # Two processes each read half of every global batch.
  halves = [list(pipeline.train_dataset(pool, sampler, start_step=0, process_index=p,
                                        process_count=2, **kw)) for p in range(2)]
  for step in range(6):
    np.testing.assert_array_equal(
        np.concatenate([halves[0][step]['image'], halves[1][step]['image']]),
        full[step]['image'])


def test_eval_batches_pad_and_keep_order(tiny_folder):
  pool = protocols.build_pool('image_folder', tiny_folder, ('train', 'test'))
  idx = pool.indices_of('test')
  batches = list(pipeline.eval_batches(pool, idx, batch_size=5, image_size=32))
  assert [n for _, n in batches] == [5, 5, 2]
  assert all(images.shape == (5, 32, 32, 3) for images, _ in batches)
  np.testing.assert_array_equal(batches[1][0][0],
                                pipeline.to_model_input(pool.load_image(idx[5]), 32))
