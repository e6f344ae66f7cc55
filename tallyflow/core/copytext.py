"""PostgreSQL's COPY text format, written without a connection.

A process that prices invoice lines hands the text of its rows to the one connection that
writes them (services.invoicing.batches): it needs the exact bytes psycopg's `write_row`
would send, with no connection of its own to format them. The rules are those of COPY
FROM's text format with the default delimiter (tab) and NULL (`\\N`), the same escapes
psycopg writes (`psycopg/_copy_base.py`, `_dump_repl`); `tests/core/test_copytext.py`
holds the two byte-equal on hostile values.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal

COPY_NULL = "\\N"

_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "\b": "\\b",
        "\t": "\\t",
        "\n": "\\n",
        "\v": "\\v",
        "\f": "\\f",
        "\r": "\\r",
    }
)


_NEEDS_ESCAPE = re.compile(r"[\\\b\t\n\v\f\r]")  # the characters of _ESCAPES


def copy_text(value: str) -> str:
    """A text value as one COPY text field (backslash, tab, newline and the rest escaped)."""
    # NOTE: most values need no escape; a search is a fifth of a translate.
    return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value


def copy_field(value: object) -> str:
    """One field of a COPY text row: None, str, bool, int, Decimal (finite), date."""
    if value is None:
        return COPY_NULL
    if isinstance(value, str):
        return copy_text(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"COPY of a non-finite numeric {value!r}")
        return str(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"no COPY text form for {type(value).__name__}")


def copy_row(values: Sequence[object]) -> str:
    """One COPY text row, newline included."""
    return "\t".join([copy_field(v) for v in values]) + "\n"
