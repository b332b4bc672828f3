"""What the command-line tools share: flag parsing whose errors are one line, and quiet
library logs."""

import logging as std_logging
import re
import sys

from absl import flags


def quiet_libraries(record) -> bool:
  """Drops INFO lines of Orbax, which logs every checkpoint step in detail."""
  return record.levelno >= std_logging.WARNING or 'orbax' not in record.pathname


def unknown_field_message(argv: list[str], error: Exception) -> str:
  """One line for a `--config.<field>` override naming no field of the config.

  ml_collections raises KeyError/AttributeError with the missing key and, when one is
  close, 'Did you mean "<name>" instead of "<key>"?'.
  """
  text = str(error.args[0] if error.args else error)
  close = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
  key = close.group(2) if close else (re.findall(r'\w+', text) or ['?'])[0]
  flag = next(
    (
      a.split('=')[0]
      for a in argv
      if a.startswith('--config.') and re.search(rf'\.{re.escape(key)}\b', a)
    ),
    f'--config...{key}',
  )
  hint = (
    f"; did you mean '{close.group(1)}'?"
    if close
    else '; configs/default.py defines every field.'
  )
  return f"{flag}: the config has no field '{key}'{hint}"


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with bad flags and unknown config fields as one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f'dahjax: {e}. Pass --helpfull to see the flags.')
  except (KeyError, AttributeError) as e:  # An override of a field that does not exist.
    sys.exit(f'dahjax: {unknown_field_message(argv, e)}')
