"""Backfill: recompute usage days from the committed lake, and report what changed.

A backfill run is: list each day's committed lake files (the manifest), compute each
day's usage from them (pure: `compute_day_usage`, one task per day, on a Dask cluster when
configured), then replace every day in ONE transaction (`replace_days`) with the quota
refresh and the job-run record, so a killed or failed run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.ingest import lake
from services.ingest.aggregate import aggregate_usage_days
from services.ingest.usage_daily import replace_usage_days
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import sql


@dataclass(frozen=True)
class DayChange:
    """usage_daily of one day before and after a recompute."""

    day: dt.date
    rows_before: int
    rows_after: int
    quantity_before: dict[str, Decimal]
    quantity_after: dict[str, Decimal]

    def quantity_change(self) -> dict[str, Decimal]:
        metrics = sorted(set(self.quantity_before) | set(self.quantity_after))
        return {
            m: self.quantity_after.get(m, Decimal(0)) - self.quantity_before.get(m, Decimal(0))
            for m in metrics
        }


def _day_totals(
    conn: sa.Connection, day: dt.date, tenant_ids: list[str] | None
) -> tuple[int, dict[str, Decimal]]:
    rows = conn.execute(sql("usage/summarize_usage_day"), {"day": day, "tenants": tenant_ids}).all()
    return sum(r.rows for r in rows), {r.metric: r.quantity for r in rows}


def committed_day_files(
    conn: sa.Connection, lake_root: str | Path, days: list[dt.date]
) -> dict[dt.date, list[str]]:
    """The committed lake files of each day (URLs), read from the manifest once."""
    by_day: dict[dt.date, list[str]] = {day: [] for day in days}
    for f in lake.committed_lake_files(conn, days):
        by_day[f.usage_date] += lake.absolute(lake_root, [f])
    return by_day


def compute_day_usage(files: list[str], tenant_ids: list[str] | None) -> pl.DataFrame:
    """One day's usage_daily rows from its committed lake files (pure: reads files only)."""
    return aggregate_usage_days(files, tenant_ids)


def replace_day(
    conn: sa.Connection, day: dt.date, daily: pl.DataFrame, tenant_ids: list[str] | None
) -> DayChange:
    """Make one day's usage_daily (optionally only some tenants) equal `daily`, in the
    caller's transaction. Rerunning gives the same rows: the lake is the source of truth."""
    rows_before, before = _day_totals(conn, day, tenant_ids)
    replace_usage_days(conn, daily, [day], tenant_ids)
    rows_after, after = _day_totals(conn, day, tenant_ids)
    crash_point("backfill.day_replaced")
    return DayChange(day, rows_before, rows_after, before, after)


def recompute_day(
    engine: Engine, lake_root: str | Path, day: dt.date, tenant_ids: list[str] | None
) -> DayChange:
    """Replace one day's usage_daily from the committed lake, in one transaction."""
    with engine.begin() as conn:
        files = committed_day_files(conn, lake_root, [day])[day]
        return replace_day(conn, day, compute_day_usage(files, tenant_ids), tenant_ids)


def backfill_markdown(changes: list[DayChange], tenant_ids: list[str] | None) -> str:
    out = io.StringIO()
    scope = ", ".join(tenant_ids) if tenant_ids else "all tenants"
    out.write(f"# Usage backfill ({scope})\n\n")
    out.write("| day | rows before | rows after | change in quantity per metric |\n")
    out.write("|---|---|---|---|\n")
    for c in changes:
        delta = ", ".join(f"{m}: {q:+}" for m, q in c.quantity_change().items() if q) or "none"
        out.write(f"| {c.day} | {c.rows_before} | {c.rows_after} | {delta} |\n")
    return out.getvalue()
