"""Unreadable images: what training and evaluation do with a file that cannot be decoded.

Real collections hold truncated downloads, empty files, text saved as `.jpg` and images
no decoder knows. `config.data.bad_images` says what happens on meeting one:

  'skip'   (default) training replaces it by a substitute, the next readable training
           image of the same labels in the training split's order (any label when none
           is left),
           so the substitute is a function of the image alone: the same on every epoch,
           resume and process count, and the batch keeps its class balance. Its path is
           logged once, and the replacements are counted in metrics.jsonl. Evaluation
           leaves an unreadable query or database image out of the ranking and out of
           the counts, and metrics.json lists it.
  'error'  the first one stops the run with one line naming the file and this option.

`python -m dahjax.data.check` lists every unreadable file of a config's data ahead of a
run.
"""

import csv
import os
import threading

from absl import logging
import numpy as np

POLICIES = ('skip', 'error')
LIST_FILE = 'bad_images.tsv'  # In the workdir: every unreadable training image met.


class BadImageError(ValueError):
  """An image that cannot be read, under `data.bad_images='error'`."""

  def __init__(self, location: str, reason: str):
    super().__init__(
      f'Cannot read image {location} ({reason}). Fix or remove the file, or pass '
      '--config.data.bad_images=skip to replace unreadable training images and leave '
      'them out of evaluation.'
    )
    self.location, self.reason = location, reason

  def __reduce__(self):  # Raised in an input worker process, re-raised in the trainer.
    return type(self), (self.location, self.reason)


def check_policy(policy: str) -> None:
  if policy not in POLICIES:
    raise ValueError(
      f"config.data.bad_images={policy!r} is not one of {', '.join(POLICIES)}: 'skip' "
      "replaces unreadable images (training) or leaves them out (evaluation), 'error' "
      'stops at the first one.'
    )


def describe(error: Exception) -> str:
  """'<type>: <message>' of a decoding failure, on one line."""
  text = ' '.join(str(error).split())
  return f'{type(error).__name__}: {text}' if text else type(error).__name__


def try_load(pool, index: int, transform=None):
  """(image, None) or (None, reason): pool image `index` decoded and `transform`ed.

  Any failure of decoding or preprocessing counts: PIL raises OSError, SyntaxError,
  ValueError or DecompressionBombError for files it cannot read.
  """
  try:
    image = pool.load_image(int(index))
    return (transform(image) if transform else image), None
  except Exception as e:  # pylint: disable=broad-except
    return None, describe(e)


class TrainLoader:
  """Loads training images, replacing an unreadable one (policy 'skip') or raising.

  `load(index)` returns (image, label index used, replaced index or -1). Substitutes
  are drawn from `train_indices` only, never from the queries.
  """

  def __init__(self, pool, train_indices: np.ndarray, policy: str = 'skip'):
    check_policy(policy)
    self._pool, self._policy = pool, policy
    self._train = np.asarray(train_indices)
    self._position = {int(i): p for p, i in enumerate(self._train)}
    self._lock = threading.Lock()
    self._unreadable: set[int] = set()
    self._substitutes: dict[int, int] = {}

  def __getstate__(self):  # Sent to input worker processes: a lock does not pickle.
    state = dict(self.__dict__)
    del state['_lock']
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def candidates(self, index: int):
    """Training images in the order tried as substitutes for `index`: those with the
    same labels after it (cyclically in pool order), then all others after it."""
    start = self._position.get(int(index), -1) + 1
    order = np.roll(self._train, -start)
    order = order[order != index]
    labels = self._pool.labels
    same = np.all(labels[order] == labels[index], axis=1)
    yield from order[same]
    yield from order[~same]

  def load(self, index: int, transform=None):
    index = int(index)
    if index not in self._unreadable:
      image, reason = try_load(self._pool, index, transform)
      if reason is None:
        return image, index, -1
      if self._policy == 'error':
        raise BadImageError(self._pool.location(int(index)), reason)
      with self._lock:
        self._unreadable.add(index)
    known = self._substitutes.get(index)
    for candidate in [known] if known is not None else self.candidates(index):
      candidate = int(candidate)
      if candidate in self._unreadable:
        continue
      image, reason = try_load(self._pool, candidate, transform)
      if reason is None:
        with self._lock:
          self._substitutes[index] = candidate
        return image, candidate, index
      with self._lock:
        self._unreadable.add(candidate)
    raise BadImageError(
      self._pool.location(int(index)), 'and no training image is readable'
    )


class BadImageLog:
  """The run's record of unreadable training images, kept in the main process.

  `note(replaced, substitutes)` takes a batch's replaced pool indices (-1: none) and
  their substitutes; the first time an image is met its path and reason are logged and
  appended to `<workdir>/bad_images.tsv` (which a resumed run reads back, so a file is
  reported once per run, however often it is stopped).
  """

  def __init__(self, pool, workdir: str | None, process_index: int = 0):
    self._pool = pool
    self.path = None
    self.known: dict[str, str] = {}
    if workdir:
      name = LIST_FILE if process_index == 0 else f'bad_images.{process_index}.tsv'
      self.path = os.path.join(workdir, name)
      if os.path.exists(self.path):
        with open(self.path, newline='') as f:
          self.known = {row[0]: row[1] for row in csv.reader(f, delimiter='\t') if row}
    self.replaced = 0  # Rows replaced since this process started.

  def note(self, replaced: np.ndarray, substitutes: np.ndarray) -> None:
    for index, substitute in zip(np.asarray(replaced), np.asarray(substitutes)):
      if index < 0:
        continue
      self.replaced += 1
      where = self._pool.location(int(index))
      if where in self.known:
        continue
      _, reason = try_load(self._pool, index)
      reason = reason or 'failed while being read'
      self.known[where] = reason
      logging.warning(
        'Unreadable training image %s (%s): replaced by %s wherever it is drawn '
        "(data.bad_images='skip').",
        where,
        reason,
        self._pool.location(int(substitute)),
      )
      if self.path:
        with open(self.path, 'a', newline='') as f:
          csv.writer(f, delimiter='\t').writerow([where, reason])

  def summary(self) -> str | None:
    """One line for the end of the run, or None when every image was readable."""
    if not self.known and not self.replaced:
      return None
    where = f', listed in {self.path}' if self.path else ''
    return (
      f'{len(self.known)} unreadable training image(s){where}; {self.replaced} '
      'draw(s) replaced by a substitute since this process started.'
    )
