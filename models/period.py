"""The billing period: a calendar month in UTC. The one definition of a month's bounds."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from tallyflow.core.errors import InvalidInput

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class BillingPeriod:
    """A calendar month in UTC: `start` inclusive, `end` exclusive."""

    start: dt.date
    end: dt.date

    @classmethod
    def parse(cls, text: str) -> BillingPeriod:
        """'YYYY-MM' -> the period; InvalidInput (code invalid_period) otherwise."""
        match = _PERIOD_RE.match(text.strip()) if isinstance(text, str) else None
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
            raise InvalidInput(
                f"period {text!r} must be a month written YYYY-MM", code="invalid_period"
            )
        return cls.of(dt.date(int(match.group(1)), int(match.group(2)), 1))

    @classmethod
    def of(cls, day: dt.date) -> BillingPeriod:
        """The period containing `day`."""
        start = day.replace(day=1)
        if start.year == dt.MAXYEAR and start.month == 12:
            # NOTE: its end (year 10000) is not a date: refused rather than an overflow.
            raise InvalidInput(f"period {start:%Y-%m} is out of range", code="invalid_period")
        end = (start + dt.timedelta(days=32)).replace(day=1)
        return cls(start, end)

    @classmethod
    def previous(cls, today: dt.date) -> BillingPeriod:
        """The month before the one containing `today` (the month-end run's default)."""
        return cls.of(today.replace(day=1) - dt.timedelta(days=1))

    @property
    def bounds(self) -> tuple[dt.date, dt.date]:
        """(start inclusive, end exclusive)."""
        return self.start, self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m}"

    def __str__(self) -> str:
        return self.label
