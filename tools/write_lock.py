"""Writes requirements/lock.txt: the exact version of every package dahjax[test] pulls
in, as installed in this environment (run it after a full test run passes).

  python tools/write_lock.py            # dahjax[test]
  python tools/write_lock.py bench      # also the extras named (when installed)

Install from it with `pip install -c requirements/lock.txt -e '.[test]'`: a constraints
file pins each package that is installed to its locked version and installs nothing
extra by itself.
"""

import importlib.metadata
import os
import platform
import re
import sys

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def normalise(name: str) -> str:
  return re.sub(r'[-_.]+', '-', name).lower()


def closure(name: str, extras: set[str]) -> dict[str, str]:
  """{normalised name: installed version} of `name[extras]` and all it requires."""
  versions, done, todo = {}, set(), [(name, frozenset(extras))]
  while todo:
    name, extras = todo.pop()
    if (normalise(name), extras) in done:
      continue
    done.add((normalise(name), extras))
    try:
      dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
      print(f'not installed, left out: {name}', file=sys.stderr)
      continue
    versions[normalise(name)] = dist.version
    for line in dist.requires or []:
      req = Requirement(line)
      env = default_environment()
      if req.marker is None or any(
        req.marker.evaluate({**env, 'extra': e}) for e in {'', *extras}
      ):
        todo.append((req.name, frozenset(req.extras)))
  return versions


def main(extras: list[str]) -> None:
  versions = closure('dahjax', {'test', *extras})
  versions.pop('dahjax')
  path = os.path.join(ROOT, 'requirements', 'lock.txt')
  with open(path, 'w') as f:
    f.write(
      f'# Exact versions dahjax[{",".join(["test", *extras])}] was tested with: Python '
      f'{platform.python_version()}, {platform.system()} {platform.machine()}.\n'
      '# Written by tools/write_lock.py; install with\n'
      "#   pip install -c requirements/lock.txt -e '.[test]'\n"
    )
    f.writelines(f'{name}=={version}\n' for name, version in sorted(versions.items()))
  print(f'{len(versions)} packages -> {path}')


if __name__ == '__main__':
  main(sys.argv[1:])
