"""Daily aggregates from lake files (DuckDB over Parquet; exact integer micro-units)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from services.ingest import lake
from tallyflow.core import storage
from tallyflow.core.sqlfiles import duckdb_sql

DAILY_SCHEMA = pl.Schema(
    [
        ("tenant_id", pl.String()),
        ("metric", pl.String()),
        ("usage_date", pl.Date()),
        ("quantity_sum_micros", pl.Int128()),
        ("event_count", pl.Int64()),
        ("quantity_max_micros", pl.Int64()),
        ("first_occurred_at", pl.Datetime("us", "UTC")),
        ("last_occurred_at", pl.Datetime("us", "UTC")),
    ]
)


def aggregate_usage_days(files: list[str], tenant_ids: list[str] | None = None) -> pl.DataFrame:
    """Per (tenant, metric, day): sum, count, max, first and last occurred_at."""
    if not files:
        return pl.DataFrame(schema=DAILY_SCHEMA)
    con = storage.connect_duckdb(files)
    try:
        con.execute("SET TimeZone = 'UTC'")
        daily = con.sql(
            duckdb_sql("ingest/aggregate_usage_days"),
            params={"files": files, "tenants": tenant_ids},
        ).pl()
    finally:
        con.close()
    result: pl.DataFrame = daily.cast(DAILY_SCHEMA)
    return result


def aggregate_run_days(
    conn: sa.Connection,
    lake_root: str | Path,
    new_files: list[lake.LakeFile],
    retired: Sequence[lake.LakeFile] = (),
) -> tuple[list[dt.date], pl.DataFrame]:
    """The days a run touched (those of its new lake files), recomputed from the committed
    lake files of those days (less those the run's compaction retires) plus the run's new
    ones."""
    days = sorted({f.usage_date for f in new_files})
    if not days:
        return [], aggregate_usage_days([])
    gone = {f.path for f in retired}
    committed = [f for f in lake.committed_lake_files(conn, days) if f.path not in gone]
    return days, aggregate_usage_days(lake.absolute(lake_root, committed + new_files))
