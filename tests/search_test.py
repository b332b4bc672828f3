"""Tests of searching one's own images: dahjax.index (encode a folder, update it), dahjax.search
(the API and the command line) and dahjax.serve (the JSON API, bad requests, the page in
headless Chromium).

One small model is trained once for the file: DSH's CNN on two well-separated quick-start
classes (airplane and frog), 150 steps, so that a query's nearest images are of its class.
"""

from concurrent import futures
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading

import jax
import numpy as np
from PIL import Image
import pytest

from configs import dsh_cifar10
from dahjax import hash_index
from dahjax import index as index_lib
from dahjax import search
from dahjax import state as state_lib
from dahjax import train
from dahjax.data import pipeline
from dahjax.data import sources
from tests import conftest

CLASSES = ('airplane', 'frog')


@pytest.fixture(scope='module')
def two_classes(tmp_path_factory):
  """(image root with train/ and test/ of two classes, trained workdir)."""
  root = conftest.copy_quickstart(
    tmp_path_factory.mktemp('two_classes'), CLASSES, {'train': 120, 'test': 10}
  )
  config = dsh_cifar10.get_config()
  config.unlock()
  config.data.data_dir = root
  config.data.protocol = 'dah_cifar10'
  config.model.num_classes = 2
  config.model.bits = 16
  config.batch_size = 40
  config.num_train_steps = 150
  config.optimizer.name = 'adam'
  config.optimizer.lr_schedule = 'constant'
  config.checkpoint_every_steps = 75
  config.log_every_steps = 75
  config.eval.batch_size = 100
  workdir = str(tmp_path_factory.mktemp('two_classes_run'))
  train.train_and_evaluate(config, workdir)
  return root, workdir


@pytest.fixture(scope='module')
def built(two_classes, tmp_path_factory):
  """An index of the two classes' training images: (images dir, index dir, model)."""
  root, workdir = two_classes
  images = str(tmp_path_factory.mktemp('collection'))
  shutil.copytree(os.path.join(root, 'train'), images, dirs_exist_ok=True)
  out = str(tmp_path_factory.mktemp('index') / 'index')
  model = index_lib.load_model(workdir)
  index_lib.build_index(model, images, out)
  return images, out, model


@pytest.fixture(scope='module')
def loaded(built):
  return search.load_index(built[1])


def reference_codes(model, images_dir, paths):
  """Codes by a plain forward pass of each image on its own."""
  net = state_lib.create_model(model.config)
  codes = []
  for p in paths:
    image = model.prepare(sources.read_image(os.path.join(images_dir, p)))
    x = pipeline.model_input(jax.numpy.asarray(image[None]))
    out = net.apply(model.variables, x, train=False)
    codes.append(np.asarray(net.binary_codes(out['hash']))[0])
  return np.stack(codes)


def class_of(path):
  return path.split('/')[0]


# dahjax.index


def test_index_holds_every_image_with_its_code_hash_and_thumbnail(built, loaded):
  images, _, model = built
  expected_paths = sorted(
    f'{c}/{f}' for c in CLASSES for f in os.listdir(os.path.join(images, c))
  )
  assert loaded.paths == expected_paths
  every = np.arange(0, len(expected_paths), 17)
  np.testing.assert_array_equal(
    np.stack([loaded.code(int(i)) for i in every]),
    reference_codes(model, images, [expected_paths[i] for i in every]),
  )
  contents = index_lib.read_contents(built[1])
  for i in every:
    with open(os.path.join(images, expected_paths[i]), 'rb') as f:
      assert contents.sha256[i] == hashlib.sha256(f.read()).hexdigest()
    thumb = Image.open(io.BytesIO(loaded.thumbnail(int(i))))
    assert thumb.format == 'JPEG' and max(thumb.size) <= index_lib.THUMBNAIL_SIZE
  assert loaded.manifest['model']['checkpoint_step'] == 150
  assert loaded.manifest['bits'] == 16 and loaded.manifest['count'] == len(expected_paths)


def test_a_second_run_encodes_only_new_and_changed_files(built, tmp_path, monkeypatch):
  source, _, model = built
  images = str(tmp_path / 'images')
  shutil.copytree(source, images)
  out = str(tmp_path / 'index')
  index_lib.build_index(model, images, out)
  os.remove(
    os.path.join(images, 'frog', sorted(os.listdir(os.path.join(images, 'frog')))[0])
  )
  airplanes = sorted(os.listdir(os.path.join(images, 'airplane')))
  changed = os.path.join(images, 'airplane', airplanes[0])
  shutil.copyfile(
    os.path.join(images, 'frog', sorted(os.listdir(os.path.join(images, 'frog')))[3]),
    changed,
  )
  touched = os.path.join(images, 'airplane', airplanes[1])
  os.utime(touched, ns=(1, 1))  # New time, same content: not encoded again.
  os.makedirs(os.path.join(images, 'new', 'deeper'))
  shutil.copyfile(
    os.path.join(images, 'airplane', airplanes[5]),
    os.path.join(images, 'new', 'deeper', 'copy.PNG'),
  )
  encoded = []
  real = index_lib.encode_files
  monkeypatch.setattr(
    index_lib,
    'encode_files',
    lambda model, root, paths, **kw: (
      encoded.extend(paths) or real(model, root, paths, **kw)
    ),
  )
  summary = index_lib.build_index(model, images, out)
  assert sorted(encoded) == sorted([f'airplane/{airplanes[0]}', 'new/deeper/copy.PNG'])
  assert (summary['new'], summary['changed'], summary['deleted']) == (1, 1, 1)
  assert summary['unchanged'] == summary['images'] - 2
  # The updated index equals one built from scratch.
  fresh = str(tmp_path / 'fresh')
  index_lib.build_index(model, images, fresh)
  a, b = index_lib.read_contents(out), index_lib.read_contents(fresh)
  assert a.paths == b.paths and a.sha256 == b.sha256
  np.testing.assert_array_equal(a.codes, b.codes)
  assert a.thumbnails == b.thumbnails
  assert len([d for d in os.listdir(out) if d.startswith('data-')]) == 1


def test_unreadable_files_are_listed_and_skipped(built, tmp_path):
  source, _, model = built
  images = str(tmp_path / 'images')
  os.makedirs(images)
  good = sorted(os.listdir(os.path.join(source, 'frog')))[:3]
  for f in good:
    shutil.copyfile(os.path.join(source, 'frog', f), os.path.join(images, f))
  with open(os.path.join(source, 'frog', good[0]), 'rb') as f:
    data = f.read()
  with open(os.path.join(images, 'truncated.jpg'), 'wb') as f:
    f.write(data[:300])
  with open(os.path.join(images, 'text.jpg'), 'w') as f:
    f.write('not an image')
  open(os.path.join(images, 'empty.png'), 'wb').close()
  rgb = np.random.default_rng(0).integers(0, 256, (40, 30, 3), np.uint8)
  Image.fromarray(rgb).convert('CMYK').save(os.path.join(images, 'cmyk.jpg'))
  Image.fromarray(rgb[..., 0]).save(os.path.join(images, 'gray.webp'))
  Image.fromarray(rgb).save(os.path.join(images, 'png_named.jpg'), format='PNG')
  summary = index_lib.build_index(model, images, str(tmp_path / 'index'))
  bad = {u['path']: u['reason'] for u in summary['unreadable']}
  assert sorted(bad) == ['empty.png', 'text.jpg', 'truncated.jpg']
  assert all(bad.values())
  loaded = search.load_index(str(tmp_path / 'index'))
  assert loaded.paths == sorted(good + ['cmyk.jpg', 'gray.webp', 'png_named.jpg'])
  assert loaded.manifest['unreadable'] == summary['unreadable']


def test_another_checkpoint_encodes_everything_again(built, two_classes, tmp_path):
  source, _, _ = built
  images = str(tmp_path / 'images')
  os.makedirs(images)
  for f in sorted(os.listdir(os.path.join(source, 'airplane')))[:4]:
    shutil.copyfile(os.path.join(source, 'airplane', f), os.path.join(images, f))
  out = str(tmp_path / 'index')
  index_lib.build_index(index_lib.load_model(two_classes[1]), images, out)
  earlier = index_lib.load_model(two_classes[1], checkpoint_step=75)
  summary = index_lib.build_index(earlier, images, out)
  assert summary['encoded'] == 4 and summary['unchanged'] == 0
  loaded = search.load_index(out)
  assert loaded.manifest['model']['checkpoint_step'] == 75
  np.testing.assert_array_equal(
    np.stack([loaded.code(i) for i in range(4)]),
    reference_codes(earlier, images, loaded.paths),
  )


def test_an_interrupted_update_leaves_the_previous_index(built, tmp_path, monkeypatch):
  source, _, model = built
  images = str(tmp_path / 'images')
  os.makedirs(images)
  files = sorted(os.listdir(os.path.join(source, 'frog')))[:3]
  for f in files[:2]:
    shutil.copyfile(os.path.join(source, 'frog', f), os.path.join(images, f))
  out = str(tmp_path / 'index')
  index_lib.build_index(model, images, out)
  shutil.copyfile(os.path.join(source, 'frog', files[2]), os.path.join(images, files[2]))

  def crash(*args, **kwargs):
    raise RuntimeError('killed while writing')

  monkeypatch.setattr(hash_index.HammingIndex, 'save', crash)
  with pytest.raises(RuntimeError, match='killed while writing'):
    index_lib.build_index(model, images, out)
  assert search.load_index(out).paths == files[:2]


def run_cli(*args):
  return subprocess.run(
    [sys.executable, '-m', *args], capture_output=True, text=True, timeout=300
  )


def test_index_cli_errors_are_one_line(built, tmp_path):
  _, _, model = built
  os.makedirs(tmp_path / 'empty')
  cases = [
    (['--workdir', str(tmp_path / 'missing'), '--images', '.'], 'does not exist'),
    (['--workdir', str(tmp_path), '--images', '.'], 'not a dahjax training workdir'),
    (['--workdir', model.workdir, '--images', str(tmp_path / 'none')], 'is not a folder'),
    (['--workdir', model.workdir, '--images', str(tmp_path / 'empty')], 'No images'),
  ]
  for args, message in cases:
    result = run_cli('dahjax.index', *args, '--output', str(tmp_path / 'out'))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('dahjax.index: ') and message in last, result.stderr
    assert 'Traceback' not in result.stderr


# dahjax.search


def test_search_codes_ranks_by_distance_then_id(loaded):
  codes = np.stack([loaded.code(i) for i in range(len(loaded))])
  queries = np.concatenate([codes[[0, 7, 100]], 1 - codes[[3]]])
  for q, found in zip(queries, loaded.search_codes(queries, topk=25)):
    distances = np.sum(codes != q, axis=1)
    order = sorted(range(len(codes)), key=lambda i: (distances[i], i))[:25]
    assert [r.id for r in found] == order
    assert [r.distance for r in found] == [int(distances[i]) for i in order]
    assert [r.path for r in found] == [loaded.paths[i] for i in order]
  for q, found in zip(queries, loaded.search_codes(queries, radius=3)):
    ids, dist = hash_index.linear_scan(codes, q, 3)
    assert [(r.id, r.distance) for r in found] == list(zip(ids.tolist(), dist.tolist()))


def test_search_images_finds_the_query_class(two_classes, loaded):
  root, _ = two_classes
  hits = []
  for c in CLASSES:
    folder = os.path.join(root, 'test', c)
    queries = [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
    results = loaded.search_images(queries, topk=10)
    assert all(len(r) == 10 for r in results)
    hits += [class_of(r.path) == c for found in results for r in found]
    # Paths and decoded arrays give the same results.
    arrays = [sources.read_image(q) for q in queries[:2]]
    assert loaded.search_images(arrays, topk=10) == results[:2]
  assert np.mean(hits) > 0.8


@pytest.mark.parametrize(
  'kwargs,message',
  [
    (dict(topk=0), 'from 1 to 1000'),
    (dict(topk=1001), 'from 1 to 1000'),
    (dict(topk=2.5), 'integer'),
    (dict(radius=-1), 'from 0 to 16'),
    (dict(radius=17), 'from 0 to 16'),
    (dict(topk=3, radius=2), 'not both'),
  ],
)
def test_search_rejects_bad_queries(loaded, kwargs, message):
  with pytest.raises(ValueError, match=message):
    loaded.search_codes(np.zeros((1, 16), np.uint8), **kwargs)


def test_load_index_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='python -m dahjax.index'):
    search.load_index(str(tmp_path))
  (tmp_path / 'index.json').write_text('{"format": "something else"}')
  with pytest.raises(ValueError, match='not a dahjax.ImageIndex'):
    search.load_index(str(tmp_path))


def test_search_cli_table_json_and_grid(two_classes, built, loaded, tmp_path):
  root, _ = two_classes
  query = os.path.join(
    root, 'test', 'frog', sorted(os.listdir(os.path.join(root, 'test', 'frog')))[0]
  )
  grid = str(tmp_path / 'grid.png')
  result = run_cli(
    'dahjax.search', '--index', built[1], query, '--topk', '4', '--grid', grid
  )
  assert result.returncode == 0, result.stderr
  expected = loaded.search_images([query], topk=4)[0]
  rows = [line.split() for line in result.stdout.splitlines() if line[:5].strip().isdigit()]
  assert rows == [[str(k), str(r.distance), r.path] for k, r in enumerate(expected, 1)]
  assert Image.open(grid).size[0] > 0
  result = run_cli('dahjax.search', '--index', built[1], query, '--radius', '2', '--json')
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout)
  assert out['queries'][0]['results'] == [
    r.to_dict() for r in loaded.search_images([query], radius=2)[0]
  ]
  bad = run_cli('dahjax.search', '--index', built[1], query, '--topk', '0')
  assert bad.returncode != 0
  assert (
    bad.stderr.strip().splitlines()[-1]
    == 'dahjax.search: topk must be from 1 to 1000, got 0.'
  )


# dahjax.serve


@pytest.fixture(scope='module')
def client(loaded):
  from dahjax import serve

  return serve.create_app(loaded, max_upload_mb=1, max_pixels=1_000_000).test_client()


def jpeg_bytes(path):
  with open(path, 'rb') as f:
    return f.read()


def upload(client, data, field='image', name='q.jpg', **form):
  return client.post(
    '/api/search',
    data={field: (io.BytesIO(data), name), **form},
    content_type='multipart/form-data',
  )


def test_api_search_health_and_thumbnails(two_classes, loaded, client):
  root, _ = two_classes
  query = os.path.join(
    root, 'test', 'airplane', sorted(os.listdir(os.path.join(root, 'test', 'airplane')))[1]
  )
  response = upload(client, jpeg_bytes(query), topk='7')
  assert response.status_code == 200
  body = response.get_json()
  assert body['results'] == [r.to_dict() for r in loaded.search_images([query], topk=7)[0]]
  assert body['ms'] > 0 and set(body['timing']) == {'decode_ms', 'encode_ms', 'search_ms'}
  by_radius = upload(client, jpeg_bytes(query), radius='1').get_json()
  assert by_radius['results'] == [
    r.to_dict() for r in loaded.search_images([query], radius=1)[0]
  ]
  first = body['results'][0]['id']
  by_id = client.get(f'/api/search?id={first}&topk=5').get_json()
  assert by_id['results'] == [
    r.to_dict() for r in loaded.search_codes(loaded.code(first)[None], topk=5)[0]
  ]
  thumb = client.get(f'/api/thumbnail/{first}')
  assert thumb.status_code == 200 and thumb.mimetype == 'image/jpeg'
  assert thumb.data == loaded.thumbnail(first)
  health = client.get('/api/health').get_json()
  assert health == {'status': 'ok', 'images': len(loaded), 'bits': 16, 'method': 'DSH'}
  page = client.get('/')
  assert page.status_code == 200 and b'id="file"' in page.data


def test_concurrent_uploads_are_encoded_together_with_the_same_codes(two_classes, loaded):
  from dahjax import serve

  root, _ = two_classes
  folder = os.path.join(root, 'test', 'airplane')
  images = [sources.read_image(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
  batcher = serve.Batcher(loaded, max_batch=4)
  batches, padded = [], []
  real = loaded.model.encode

  def counted(x, pad_to=1):
    batches.append(len(x))
    padded.append(pad_to)
    return real(x, pad_to=pad_to)

  loaded.model.encode = counted
  try:
    with futures.ThreadPoolExecutor(len(images)) as pool:
      codes = list(pool.map(batcher.encode, images))
  finally:
    del loaded.model.encode
  np.testing.assert_array_equal(np.stack(codes), loaded.encode_images(images))
  assert all(p in (1, 2, 4) and b <= p for b, p in zip(batches, padded))
  assert sum(batches) >= len(images)


def bad_requests(query_jpeg):
  big = np.random.default_rng(0).integers(0, 256, (1100, 1100, 3), np.uint8)
  out = io.BytesIO()
  Image.fromarray(big).save(out, format='PNG')  # About 3.6 MB: over the 1 MB limit.
  wide = io.BytesIO()
  Image.new('RGB', (1001, 1000)).save(wide, format='PNG')  # Small file, 1,001,000 pixels.
  photo = io.BytesIO()
  Image.fromarray(big[:200, :200]).save(photo, format='JPEG')
  return [
    ('not an image', dict(data=b'hello, world'), 400, 'not a readable image'),
    ('empty upload', dict(data=b''), 400, 'empty'),
    ('truncated JPEG', dict(data=query_jpeg[:300]), 400, 'Truncated'),
    (
      'truncated after its header',
      dict(data=photo.getvalue()[:8000]),
      400,
      'cannot be decoded',
    ),
    ('over 1 MB', dict(data=out.getvalue()), 413, '1 MB'),
    ('over 1,000,000 pixels', dict(data=wide.getvalue()), 413, 'pixels'),
    ('wrong field', dict(data=query_jpeg, field='file'), 400, "field 'image'"),
    ('topk 0', dict(data=query_jpeg, topk='0'), 400, 'topk must be from 1 to 1000'),
    ('topk 1001', dict(data=query_jpeg, topk='1001'), 400, 'topk must be from 1 to 1000'),
    ('topk abc', dict(data=query_jpeg, topk='abc'), 400, 'topk must be an integer'),
    ('radius -1', dict(data=query_jpeg, radius='-1'), 400, 'radius must be from 0'),
    ('topk and radius', dict(data=query_jpeg, topk='3', radius='1'), 400, 'not both'),
  ]


def test_bad_uploads_get_a_4xx_json_error(two_classes, client):
  root, _ = two_classes
  folder = os.path.join(root, 'test', 'frog')
  query = jpeg_bytes(os.path.join(folder, sorted(os.listdir(folder))[0]))
  for what, kwargs, status, message in bad_requests(query):
    response = upload(client, **kwargs)
    assert response.status_code == status, what
    assert message in response.get_json()['error'], (what, response.get_json())
  assert client.get('/api/health').status_code == 200  # Still serving.


@pytest.mark.parametrize(
  'url,status',
  [
    ('/api/thumbnail/../../../../etc/passwd', 404),
    ('/api/thumbnail/%2e%2e%2f%2e%2e%2fetc%2fpasswd', 404),
    ('/api/thumbnail/..%2F..%2Fsetup.cfg', 404),
    ('/api/thumbnail//etc/passwd', 404),
    ('/api/thumbnail/%2Fetc%2Fpasswd', 404),
    ('/../../etc/passwd', 404),
    ('/%2e%2e/%2e%2e/etc/passwd', 404),
    ('/static/../../setup.cfg', 404),
    ('/api/thumbnail/-1', 404),
    ('/api/thumbnail/240', 404),
    ('/api/thumbnail/1e3', 404),
    ('/api/search?id=-1', 404),
    ('/api/search?id=240', 404),
    ('/api/search?id=../etc/passwd', 400),
    ('/api/search', 400),
  ],
)
def test_no_request_reaches_a_file_by_path(client, url, status):
  response = client.get(url)
  assert response.status_code == status
  assert response.is_json and response.get_json()['error']
  assert b'root:' not in response.data and b'[metadata]' not in response.data


# The page in a browser, on a real server on loopback.


def chromium_paths():
  found = [shutil.which(n) for n in ('chromium', 'chromedriver')]
  return found if all(found) else None


@pytest.fixture(scope='module')
def live_server(loaded):
  import waitress

  from dahjax import serve

  server = waitress.create_server(
    serve.create_app(loaded), host='127.0.0.1', port=0, threads=4
  )
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{server.effective_port}'
  server.close()


@pytest.mark.skipif(
  not chromium_paths() and not os.environ.get('CI'),
  reason="needs Debian's chromium and chromium-driver (CI installs them)",
)
def test_the_page_in_headless_chromium(two_classes, loaded, live_server, tmp_path):
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions
  from selenium.webdriver.support.ui import WebDriverWait

  browser_path, driver_path = chromium_paths()
  options = webdriver.ChromeOptions()
  options.binary_location = browser_path
  for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1280,900'):
    options.add_argument(arg)
  driver = webdriver.Chrome(service=Service(driver_path), options=options)
  try:
    wait = WebDriverWait(driver, 30)
    driver.get(live_server + '/')
    wait.until(
      expected_conditions.text_to_be_present_in_element((By.ID, 'about'), 'images')
    )
    root, _ = two_classes
    folder = os.path.join(root, 'test', 'frog')
    query = os.path.join(folder, sorted(os.listdir(folder))[2])
    driver.find_element(By.ID, 'file').send_keys(query)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '.result img')) == 10)
    wait.until(
      lambda d: all(
        d.execute_script(
          'return arguments[0].complete && arguments[0].naturalWidth > 0', img
        )
        for img in d.find_elements(By.CSS_SELECTOR, '.result img')
      )
    )
    figures = driver.find_elements(By.CSS_SELECTOR, '.result')
    paths = [f.get_attribute('data-path') for f in figures]
    assert paths == [r.path for r in loaded.search_images([query], topk=10)[0]]
    assert sum(class_of(p) == 'frog' for p in paths) >= 8
    screenshot = os.environ.get('DAHJAX_SCREENSHOT') or str(tmp_path / 'page.png')
    driver.save_screenshot(screenshot)
    assert Image.open(screenshot).size[0] > 0
    clicked = figures[-1].get_attribute('data-path')
    figures[-1].click()
    wait.until(
      expected_conditions.text_to_be_present_in_element((By.ID, 'status'), clicked)
    )
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '.result')) == 10)
    again = [
      f.get_attribute('data-path') for f in driver.find_elements(By.CSS_SELECTOR, '.result')
    ]
    item = loaded.paths.index(clicked)
    assert again == [
      r.path for r in loaded.search_codes(loaded.code(item)[None], topk=10)[0]
    ]
  finally:
    driver.quit()
