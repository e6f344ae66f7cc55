"""Gapless invoice numbers (contract 5.3): a counter row per (series, year).

`INV-YYYY-NNNNNN` for invoices and adjustments, `CN-YYYY-NNNNNN` for credit notes (the
prefixes are settings; YYYY is the UTC year of closing; NNNNNN restarts at 000001 each
year). Numbers are taken by incrementing the series' counter row inside the closing
transaction: the row lock makes concurrent closes queue until the first commits, and a
close that rolls back rolls its increment back with it, so within a year and series
every number from 1 to the highest is used exactly once. Voiding frees no number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from tallyflow.core.settings import Settings
from tallyflow.core.sqlfiles import sql


@dataclass(frozen=True)
class NumberingRule:
    """The series of each invoice kind (settings TALLYFLOW_INVOICE_PREFIX / _CREDIT_NOTE_PREFIX).

    NOTE: the counter is keyed by the prefix itself: a series *is* its prefix, so a prefix
    changed mid-year starts its own series at 000001 and never collides with the old one.
    """

    invoice_prefix: str = "INV"
    credit_note_prefix: str = "CN"

    @classmethod
    def of(cls, settings: Settings) -> NumberingRule:
        return cls(settings.invoice_prefix, settings.credit_note_prefix)

    def series(self, kind: str) -> str:
        return self.credit_note_prefix if kind == "credit_note" else self.invoice_prefix

    @staticmethod
    def format(series: str, year: int, n: int) -> str:
        """INV-2026-000042 (more digits past 999999, never truncated)."""
        return f"{series}-{year:04d}-{n:06d}"


def take_numbers(
    conn: sa.Connection, series: str, year: int, count: int, *, now: dt.datetime
) -> list[int]:
    """Reserve the next `count` numbers of (series, year) in the caller's transaction."""
    if count <= 0:
        return []
    last = int(
        conn.execute(
            sql("invoicing/reserve_invoice_numbers"),
            {"series": series, "year": year, "count": count, "now": now},
        ).scalar_one()
    )
    return list(range(last - count + 1, last + 1))


def assign_numbers(
    conn: sa.Connection,
    drafts: Sequence[tuple[int, str]],
    rule: NumberingRule,
    *,
    now: dt.datetime,
) -> dict[int, str]:
    """Numbers for the (id, kind) drafts, in their order within each series.

    NOTE: series are taken in sorted order, so two closes needing both series lock the
    counter rows in the same order and cannot deadlock.
    """
    year = now.astimezone(dt.UTC).year
    by_series: dict[str, list[int]] = {}
    for invoice_id, kind in drafts:
        by_series.setdefault(rule.series(kind), []).append(invoice_id)
    numbers: dict[int, str] = {}
    for series in sorted(by_series):
        ids = by_series[series]
        for invoice_id, n in zip(
            ids, take_numbers(conn, series, year, len(ids), now=now), strict=True
        ):
            numbers[invoice_id] = rule.format(series, year, n)
    return numbers
