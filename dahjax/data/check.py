"""Reads every image of a config's data once and lists the files that cannot be read.

  python -m dahjax.data.check --config configs/dah_cifar10.py \
      --config.data.data_dir=/data/cifar10_jpeg [--threads 8]

Every image of every split the config's source and protocol read is decoded, in
parallel threads (decoders release the GIL); each unreadable file is printed with the
reason, one a line, and the exit status is 1 when there is any, 0 otherwise. A run meets
such files with `config.data.bad_images` ('skip' replaces or leaves them out, 'error'
stops); this finds them all ahead of it.
"""

import concurrent.futures
import os
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from dahjax import cli
from dahjax import progress
from dahjax.data import bad_images
from dahjax.data import checks
from dahjax.data import input_data
from dahjax.data import protocols

_THREADS = flags.DEFINE_integer(
  'threads', os.cpu_count() or 1, 'Images decoded at once.', lower_bound=1
)
config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)


def find_unreadable(pool, threads: int, report_every: float = 10.0):
  """[(pool index, reason)] of every image of `pool` that cannot be read, in order."""
  found, start, last = [], time.monotonic(), time.monotonic()

  def check(i):
    return i, bad_images.try_load(pool, i)[1]

  with concurrent.futures.ThreadPoolExecutor(threads) as executor:
    for done, (i, reason) in enumerate(executor.map(check, range(len(pool))), 1):
      if reason is not None:
        found.append((i, reason))
      now = time.monotonic()
      if now - last >= report_every:
        rate = done / (now - start)
        print(
          f'checked {done:,}/{len(pool):,} images, {len(found)} unreadable, '
          f'ETA {progress.format_duration((len(pool) - done) / rate)}',
          file=sys.stderr,
          flush=True,
        )
        last = now
  return found


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  cfg = flags.FLAGS.config.data
  try:
    bad_images.check_policy(cfg.bad_images)
    checks.check_data(cfg)
    splits, kwargs = input_data.source_args(cfg)
    pool = protocols.build_pool(
      cfg.source, input_data.resolve_data_dir(cfg.data_dir), splits, **kwargs
    )
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f'dahjax: {e}')
  start = time.monotonic()
  found = find_unreadable(pool, _THREADS.value)
  for index, reason in found:
    print(f'{pool.location(index)}\t{reason}')
  print(
    f'Checked {len(pool):,} images (splits {", ".join(pool.split_names)}) in '
    f'{progress.format_duration(time.monotonic() - start)}: '
    + (f'{len(found)} unreadable.' if found else 'all readable.'),
    file=sys.stderr,
  )
  sys.exit(1 if found else 0)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=cli.parse_flags)
