"""Prefect tasks of the ingest run, thin wrappers over services/ingest: discover, aggregate,
commit (or the idle commit of a run with nothing new); and the per-file validation that a
Dask cluster runs when TALLYFLOW_DASK_ADDRESS is set (staging, which fans those out, runs in
the flow body: flows/ingest_usage.py).

NOTE: no retries: each step either leaves nothing visible (staging writes files the manifest
does not list yet) or is the run's one transaction; the rerun of a failed run redoes it all.
NOTE: the validate and aggregate tasks import their services (Polars, DuckDB, Pandera) when
they run: a run with nothing new never loads them (issue 12 item 4).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

from services.ingest import lake
from services.ingest.commit import commit_idle_run, commit_ingest
from services.ingest.discovery import LandingFile, new_landing_files
from services.ingest.reports import IngestSummary
from tallyflow.core.resources import Resources

if TYPE_CHECKING:
    import polars as pl

    from services.ingest.readers import FileValidation
    from services.ingest.staging import Staged


@task(name="discover_landing_files", cache_policy=NO_CACHE)
def discover_landing_files(
    resources: Resources, roots: list[str]
) -> tuple[list[LandingFile], int, list[str]]:
    """New usage files under the roots; files whose content was ingested are skipped."""
    with resources.engine.connect() as conn:
        return new_landing_files(conn, roots)


@task(name="validate_landing_file", task_run_name="validate {file.name}", cache_policy=NO_CACHE)
def validate_landing_file(file: LandingFile, now: dt.datetime) -> FileValidation:
    """Read and validate one landing file on a Dask worker (pure: no database, no lake
    writes, so it takes no resources: the engine cannot be pickled)."""
    from services.ingest.readers import try_validate_event_file

    return try_validate_event_file(file.path, now)


@task(name="aggregate_touched_days", cache_policy=NO_CACHE)
def aggregate_touched_days(
    resources: Resources,
    new_files: list[lake.LakeFile],
    retired: list[lake.LakeFile] | None = None,
) -> tuple[list[dt.date], pl.DataFrame]:
    """Recompute the days this run touched from committed + new lake files (less those its
    compaction retires)."""
    from services.ingest.aggregate import aggregate_run_days

    with resources.engine.connect() as conn:
        return aggregate_run_days(
            conn, resources.settings.lake_location.url, new_files, retired or []
        )


@task(name="commit_ingest_run", cache_policy=NO_CACHE)
def commit_ingest_run(
    resources: Resources,
    run_id: uuid.UUID,
    staged: Staged,
    days: list[dt.date],
    daily: pl.DataFrame,
    skipped_files: int,
    ignored_files: list[str],
    now: dt.datetime,
    lock_pid: int | None = None,
) -> IngestSummary:
    """The run's one transaction (services/ingest/commit.py), quota refresh included; it
    records the run succeeded."""
    return commit_ingest(
        resources.engine,
        run_id,
        staged,
        days,
        daily,
        skipped_files,
        ignored_files,
        now,
        lock_pid,
        lake_root=resources.settings.lake_location.url,
    )


@task(name="commit_idle_ingest_run", cache_policy=NO_CACHE)
def commit_idle_ingest_run(
    resources: Resources,
    run_id: uuid.UUID,
    skipped_files: int,
    ignored_files: list[str],
    now: dt.datetime,
    lock_pid: int | None = None,
) -> IngestSummary:
    """The commit of a run with nothing to stage: quota refresh, alerts, job run (recorded
    succeeded in its transaction)."""
    return commit_idle_run(resources.engine, run_id, skipped_files, ignored_files, now, lock_pid)
