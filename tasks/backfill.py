"""Prefect task of the backfill: one usage day recomputed from the lake."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from services.ingest.backfill import DayChange, recompute_day


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
