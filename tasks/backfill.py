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


@task(
    name="compute_usage_days",
    task_run_name="compute {first_day}..{last_day}",
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NO_CACHE,
)
def compute_usage_days(
    day_files: list[tuple[dt.date, list[str]]],
    tenant_ids: list[str] | None,
    first_day: dt.date,
    last_day: dt.date,
) -> list[pl.DataFrame]:
    """A run of consecutive backfill days on a Dask worker, in order: one task for several
    days, because Prefect's cost per task run (about 0.2 s to ship its context, 0.3 s to run
    it on a worker, measured in bench/README.md) is several times one day's DuckDB work.
    Retried as a whole when it fails: it only reads. `first_day`/`last_day` name the run."""
    return [compute_day_usage(files, tenant_ids) for _, files in day_files]
