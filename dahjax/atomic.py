"""Files written under a temporary name and renamed when complete.

A reader (or a restart after a crash) never sees a half-written file: the rename
replaces the old file in one step, on the same file system.
"""

from collections.abc import Iterator
import contextlib
import json
import os
from typing import Any


@contextlib.contextmanager
def replacing(path: str, keep_extension: bool = False) -> Iterator[str]:
  """Yields a temporary path beside `path` to write; renames it to `path` on success.

  The temporary name is `path` + '.tmp', or with `keep_extension` 'name.tmp.ext', for
  writers that insist on an extension (NumPy's `savez` appends '.npz' to any other).
  """
  root, ext = os.path.splitext(path)
  tmp = f'{root}.tmp{ext}' if keep_extension else path + '.tmp'
  yield tmp
  os.replace(tmp, path)


def write_text(path: str, text: str) -> None:
  with replacing(path) as tmp:
    with open(tmp, 'w') as f:
      f.write(text)


def write_json(path: str, value: Any, **kwargs: Any) -> None:
  """`json.dump(value, ..., **kwargs)` into `path`, atomically, as strict JSON: a NaN or
  infinity raises ValueError instead of writing what strict parsers reject."""
  kwargs.setdefault('allow_nan', False)
  write_text(path, json.dumps(value, **kwargs))
