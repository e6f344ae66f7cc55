"""Prefect tasks of the ingest run, thin wrappers over services/ingest: discover, stage
(read, validate, dedupe, write the lake), aggregate, commit; and the per-file validation
that a Dask cluster runs when TALLYFLOW_DASK_ADDRESS is set.

NOTE: no retries: each step either leaves nothing visible (staging writes files the manifest
does not list yet) or is the run's one transaction; the rerun of a failed run redoes it all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from services.ingest import lake
from services.ingest.commit import commit_idle_run, commit_ingest
from services.ingest.discovery import LandingFile, new_landing_files
from services.ingest.reports import IngestSummary

if TYPE_CHECKING:
    import polars as pl

    from services.ingest.readers import FileValidation
    from services.ingest.staging import Staged, StageLimits

# NOTE: the stage, validate and aggregate tasks import their services (Polars, DuckDB,
# Pandera) when they run: a run with nothing new never loads them (issue 12 item 4).


@task(name="discover_landing_files", cache_policy=NO_CACHE)
def discover_landing_files(
    engine: Engine, roots: list[str]
) -> tuple[list[LandingFile], int, list[str]]:
    """New usage files under the roots; files whose content was ingested are skipped."""
    with engine.connect() as conn:
        return new_landing_files(conn, roots)


@task(name="validate_landing_file", task_run_name="validate {file.name}", cache_policy=NO_CACHE)
def validate_landing_file(file: LandingFile, now: dt.datetime) -> FileValidation:
    """Read and validate one landing file (pure: no database, no lake writes)."""
    from services.ingest.readers import try_validate_event_file

    return try_validate_event_file(file.path, now)


@task(name="stage_new_events", cache_policy=NO_CACHE)
def stage_new_events(
    engine: Engine,
    lake_root: str,
    files: list[LandingFile],
    now: dt.datetime,
    run_id: uuid.UUID,
    *,
    drain_inbox: bool,
    limits: StageLimits | None = None,
) -> Staged:
    """Validate, dedupe and write the new events of the files (then the inbox) to the lake;
    compact the touched days with too many files."""
    from services.ingest.staging import stage_events

    return stage_events(
        engine, lake_root, files, now, run_id, drain_inbox=drain_inbox, limits=limits
    )


@task(name="aggregate_touched_days", cache_policy=NO_CACHE)
def aggregate_touched_days(
    engine: Engine,
    lake_root: str | Path,
    new_files: list[lake.LakeFile],
    retired: list[lake.LakeFile] | None = None,
) -> tuple[list[dt.date], pl.DataFrame]:
    """Recompute the days this run touched from committed + new lake files (less those its
    compaction retires)."""
    from services.ingest.aggregate import aggregate_run_days

    with engine.connect() as conn:
        return aggregate_run_days(conn, lake_root, new_files, retired or [])


@task(name="commit_ingest_run", cache_policy=NO_CACHE)
def commit_ingest_run(
    engine: Engine,
    run_id: uuid.UUID,
    staged: Staged,
    days: list[dt.date],
    daily: pl.DataFrame,
    skipped_files: int,
    ignored_files: list[str],
    now: dt.datetime,
    lock_pid: int | None = None,
    *,
    lake_root: str | Path,
) -> IngestSummary:
    """The run's one transaction (services/ingest/commit.py), quota refresh included."""
    return commit_ingest(
        engine,
        run_id,
        staged,
        days,
        daily,
        skipped_files,
        ignored_files,
        now,
        lock_pid,
        lake_root=lake_root,
    )


@task(name="commit_idle_ingest_run", cache_policy=NO_CACHE)
def commit_idle_ingest_run(
    engine: Engine,
    run_id: uuid.UUID,
    skipped_files: int,
    ignored_files: list[str],
    now: dt.datetime,
    lock_pid: int | None = None,
) -> IngestSummary:
    """The commit of a run with nothing to stage: quota refresh, alerts, job run."""
    return commit_idle_run(engine, run_id, skipped_files, ignored_files, now, lock_pid)
