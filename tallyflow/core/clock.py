"""The one clock: every "now" and "today" of tallyflow is read here.

It is also the tests' seam: `frozen_at(moment)` fixes the clock for the code under test, so
no test depends on the day it runs (a month's first hour, midnight).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

_frozen: dt.datetime | None = None


def utc_now() -> dt.datetime:
    """The current instant, timezone-aware UTC."""
    return _frozen if _frozen is not None else dt.datetime.now(dt.UTC)


def utc_today() -> dt.date:
    """The current UTC date (usage days and billing periods are UTC)."""
    return utc_now().date()


@contextmanager
def frozen_at(moment: dt.datetime) -> Iterator[dt.datetime]:
    """Fix the clock at `moment` (aware) inside the block."""
    global _frozen
    if moment.tzinfo is None:
        raise ValueError("frozen_at needs an aware datetime")
    previous, _frozen = _frozen, moment.astimezone(dt.UTC)
    try:
        yield _frozen
    finally:
        _frozen = previous
