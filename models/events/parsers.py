"""Reference parsers: the exact quantity and timestamp rules in plain Python.

The SQL parser (sql/duckdb/events/parse_raw_events.sql) handles the common spellings itself
and calls these (as UDFs) for the rest; property tests hold the two to the same answers.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Final

from models.events.frame import NUMBER, STRING
from models.events.rules import MAX_QUANTITY_MICROS, MICROS

_DECIMAL = r"^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,6}))?$"
_RFC3339 = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?$"
)
NEGATIVE: Final = -1  # quantity_micros_exact: the value is below zero
_DECIMAL_RE: Final = re.compile(_DECIMAL)
_RFC3339_RE: Final = re.compile(_RFC3339)
_EPOCH_RE: Final = re.compile(r"^([+-]?[0-9]+)(?:\.([0-9]+))?$")
_MAX_EPOCH_SECONDS: Final = 253_402_300_800  # 10000-01-01: beyond it no date exists
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def quantity_micros_exact(text: str, kind: str | None) -> int | None:
    """The quantity rule, exactly: micro-units rounded half-even (never a float).

    None when the value is not a finite number (or of another JSON type), NEGATIVE when
    it is below zero, MAX_QUANTITY_MICROS + 1 for anything beyond the limit. The SQL
    parser (sql/parse_raw_events.sql) handles the common spellings itself and asks this
    function for the rest; tests hold the two to the same answers.
    """
    if kind not in (STRING, NUMBER):
        return None
    match = _DECIMAL_RE.match(text.strip())
    if match is None:
        return None
    sign, whole, frac, exp = match.groups()
    whole, frac = whole or "", frac or ""
    if not whole and not frac:
        return None
    digits = (whole + frac).lstrip("0")
    if not digits:
        return 0
    if sign == "-":
        return NEGATIVE
    n, shift = len(digits), int(exp or 0) - len(frac) + 6  # value = digits * 10^shift
    if n + shift > 19:  # at least 10^19 micro-units
        return MAX_QUANTITY_MICROS + 1
    if shift >= 0:
        micros = int(digits) * 10**shift
    elif n + shift < 0:  # below 0.1 micro-units
        micros = 0
    else:
        kept, dropped = digits[: n + shift], digits[n + shift :]
        micros = int(kept or "0")
        if dropped[0] > "5" or (
            dropped[0] == "5" and (dropped[1:].strip("0") != "" or micros % 2 == 1)
        ):
            micros += 1
    return micros if micros <= MAX_QUANTITY_MICROS else MAX_QUANTITY_MICROS + 1


def occurred_at_micros_exact(text: str, kind: str | None) -> int | None:
    """The timestamp rule: epoch microseconds (UTC) of RFC 3339 text with `Z` or an
    offset, or of epoch seconds (a number or numeric text); None otherwise. Fractions
    beyond microseconds are cut off."""
    value = text.strip()
    epoch = _EPOCH_RE.match(value) if kind in (STRING, NUMBER) else None
    if epoch is not None:
        seconds = int(epoch[1]) if len(epoch[1]) <= 20 else _MAX_EPOCH_SECONDS
        if abs(seconds) >= _MAX_EPOCH_SECONDS:
            return None
        return seconds * MICROS + int((epoch[2] or "").ljust(6, "0")[:6])
    rfc = _RFC3339_RE.match(value.upper()) if kind == STRING else None
    if rfc is None or rfc[4] is None:
        return None
    date, time, frac, zone = rfc.groups()
    zone = "+00:00" if zone == "Z" else zone
    try:
        moment = dt.datetime.fromisoformat(f"{date}T{time}.{(frac or '')[:6].ljust(6, '0')}{zone}")
    except ValueError:
        return None
    return micros_of(moment)


def is_naive_timestamp(text: str) -> bool:
    """A real date-time in RFC 3339 form without `Z` or an offset."""
    rfc = _RFC3339_RE.match(text.strip().upper())
    if rfc is None or rfc[4] is not None:
        return False
    try:
        dt.datetime.fromisoformat(f"{rfc[1]}T{rfc[2]}")
    except ValueError:
        return False
    return True


def micros_of(moment: dt.datetime) -> int:
    delta = moment.astimezone(dt.UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


def micros_to_text(micros: int) -> str:
    """Exact decimal text of a micro-unit integer (e.g. 1500000 -> '1.5')."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    text = f"{whole}.{frac:06d}".rstrip("0").rstrip(".")
    return sign + text


class _Literal(str):
    """A JSON number's text as written (json.loads' parse_float / parse_int)."""


def quantity_literal(line: str) -> str | None:
    """The event's own top-level `quantity` as written in the JSON line, when a number
    (never a `quantity` key nested in `properties`); None otherwise. Only lines whose
    quantity DuckDB would print back inexactly ask for it."""
    try:
        event = json.loads(line, parse_float=_Literal, parse_int=_Literal)
    except (ValueError, RecursionError):
        return None
    value = event.get("quantity") if isinstance(event, dict) else None
    return str(value) if isinstance(value, _Literal) else None
