"""What every benchmark prints with its table: the command, the machine, the date."""

import datetime
import os
import platform
import subprocess
import sys

from dahjax import parallel


def machine() -> str:
  """CPU, cores, memory and library versions, without starting JAX."""
  try:
    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
  except (ValueError, OSError):
    memory = float('nan')
  versions = subprocess.run(
    [sys.executable, '-c', 'import jax, flax; print(jax.__version__, flax.__version__)'],
    capture_output=True,
    text=True,
  ).stdout.split()
  jax_version = versions[0] if versions else '?'
  return (
    f'{parallel.processor_name()} ({platform.machine()}), {os.cpu_count()} cores, '
    f'{memory:.0f} GiB, Python {platform.python_version()}, jax {jax_version}'
  )


def append(path: str, title: str, body: str) -> None:
  """Appends a section with the command line, machine and date to a markdown file."""
  if not path:
    return
  command = ' '.join(['python', *sys.argv])
  with open(path, 'a') as f:
    f.write(
      f'\n### {title}\n\n`{command}`\n\n{datetime.date.today()}, {machine()}\n\n{body}\n'
    )
