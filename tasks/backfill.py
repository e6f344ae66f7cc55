"""Prefect task of the backfill: one usage day computed from its committed lake files."""

from __future__ import annotations

import datetime as dt

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from services.ingest.backfill import compute_day_usage


@task(
    name="compute_usage_day",
    task_run_name="compute {day}",
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NO_CACHE,
)
def compute_usage_day(files: list[str], day: dt.date, tenant_ids: list[str] | None) -> pl.DataFrame:
    """One day of a backfill: its usage rows from its lake files (retried alone when it
    fails: it only reads). `day` names the task run; the files are that day's."""
    return compute_day_usage(files, tenant_ids)
