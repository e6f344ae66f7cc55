"""Prefect tasks of the backfill: recompute one usage day from the lake, report changes."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
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


def recompute_day(
    engine: Engine, lake_root: Path, day: dt.date, tenant_ids: list[str] | None
) -> DayChange:
    """Replace one day's usage_daily (optionally only some tenants) from the committed lake,
    in one transaction. Rerunning it gives the same rows: the lake is the source of truth."""
    with engine.begin() as conn:
        rows_before, before = _day_totals(conn, day, tenant_ids)
        files = lake.absolute(lake_root, lake.committed_lake_files(conn, [day]))
        daily = aggregate_usage_days(files, tenant_ids)
        replace_usage_days(conn, daily, [day], tenant_ids)
        rows_after, after = _day_totals(conn, day, tenant_ids)
        crash_point("backfill.day_replaced")
    crash_point("backfill.day_committed")
    return DayChange(day, rows_before, rows_after, before, after)


@task(
    name="recompute_usage_day",
    task_run_name="recompute {day}",
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NO_CACHE,
)
def recompute_usage_day(
    engine: Engine, lake_root: Path, day: dt.date, tenant_ids: list[str] | None
) -> DayChange:
    """One day of a backfill (retried alone when it fails)."""
    return recompute_day(engine, lake_root, day, tenant_ids)


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
