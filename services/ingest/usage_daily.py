"""Replace usage days in Postgres in the caller's transaction (COPY, update, insert, delete).

Safe to rerun: the staged rows are the complete truth for the days (and tenants) given,
so a second run writes the same rows and leaves unchanged rows (and their updated_at) as
they are. Readers see the old day or the new day, never half of one (one transaction).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tallyflow.core.db import driver_connection
from tallyflow.core.sqlfiles import copy_statement, sql

if TYPE_CHECKING:
    import polars as pl  # NOTE: only a type here (the ingest commit imports this module)

STAGE_COLUMNS = (
    "tenant_id",
    "metric",
    "usage_date",
    "quantity_sum_micros",
    "event_count",
    "quantity_max_micros",
    "first_occurred_at",
    "last_occurred_at",
)


def replace_usage_days(
    conn: sa.Connection,
    daily: pl.DataFrame,
    days: list[dt.date],
    tenant_ids: list[str] | None = None,
) -> int:
    """Make usage_daily for `days` (optionally only `tenant_ids`) equal `daily`."""
    if not days:
        return 0
    conn.execute(sql("usage/create_usage_daily_stage"))
    buffer = io.BytesIO()
    daily.select(STAGE_COLUMNS).write_csv(
        buffer, include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.6f%:z"
    )
    raw = driver_connection(conn)
    with raw.cursor().copy(copy_statement("usage/copy_usage_daily_stage")) as copy:
        copy.write(buffer.getvalue())
    conn.execute(sql("usage/update_changed_usage_daily_from_stage"))
    conn.execute(sql("usage/insert_new_usage_daily_from_stage"))
    conn.execute(
        sql("usage/delete_usage_daily_not_in_stage"), {"days": days, "tenants": tenant_ids}
    )
    conn.execute(sql("usage/drop_usage_daily_stage"))
    return daily.height
