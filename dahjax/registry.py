"""Named components: every registry is a dict of name -> component, read through `lookup`."""

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar('T')


def lookup(registry: Mapping[str, T], name: str, what: str, plural: str | None = None) -> T:
  """`registry[name]`; an unknown name raises ValueError listing the valid names.

  Args:
    registry: the components by name.
    name: the name asked for (a config field's value).
    what: what the names are, for the message, e.g. 'model' or 'data source'.
    plural: `what`'s plural in "valid ...: " (default `what` + 's').

  Raises:
    ValueError: "Unknown <what> '<name>'; valid <plural>: <names, sorted>."
  """
  if name not in registry:
    raise ValueError(
      f'Unknown {what} {name!r}; valid {plural or what + "s"}: '
      f'{", ".join(sorted(registry))}.'
    )
  return registry[name]
