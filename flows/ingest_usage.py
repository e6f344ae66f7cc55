"""Flow `ingest_usage`: landing files + pushed events -> lake -> usage_daily -> quota_usage."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import TaskRunner

from flows.runs import flow_job_run
from services import lake_guard
from services.ingest.discovery import LandingFile, has_pushed_events
from services.ingest.reports import IngestSummary, summary_markdown
from services.job_runs import usage_write_lock
from tallyflow.core import storage
from tallyflow.core.clock import utc_now
from tallyflow.core.faults import crash_point
from tallyflow.core.resources import Resources, resources_from_env
from tallyflow.runtime.dask import cluster_threads, dask_task_runner, map_in_order
from tasks.ingest import (
    aggregate_touched_days,
    commit_idle_ingest_run,
    commit_ingest_run,
    discover_landing_files,
    validate_landing_file,
)

if TYPE_CHECKING:
    from services.ingest.readers import FileValidation
    from services.ingest.staging import ValidateFiles


def run_ingest(
    res: Resources, paths: list[str] | None, *, drain_inbox: bool = True
) -> IngestSummary:
    """The ingest run (used by the flow): see docs/ARCHITECTURE.md for the commit protocol."""
    logger = get_run_logger()
    roots = [storage.parse_url(p) for p in paths] if paths else [res.settings.landing_location.url]
    missing = [r for r in roots if not storage.exists(r)]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    lake_root = res.settings.lake_location.url
    parameters = {"paths": [str(r) for r in roots], "drain_inbox": drain_inbox}
    with (
        usage_write_lock(res.engine) as lock_pid,
        dask_task_runner(res.settings.dask_address) as runner,
        flow_job_run(res, "ingest_usage", parameters) as run,
    ):
        now = utc_now()
        crash_point("ingest.started")
        with res.engine.connect() as conn:
            # NOTE: before any lake change: a lake of another database stays untouched.
            lake_guard.ensure_lake_owner(conn, lake_root)
            swept = lake_guard.sweep_failed_run_files(
                conn, lake_root, retention_days=res.settings.lake_trash_retention_days
            )
        if swept.moved:
            logger.warning(
                "moved %d lake files of failed runs to %s",
                len(swept.moved),
                storage.join(lake_root, "trash"),
            )
        crash_point("ingest.orphans_removed")
        files, skipped, ignored = discover_landing_files(res, roots)
        crash_point("ingest.discovered")
        for path in ignored:
            logger.warning("ignored %s: not a usage file type", path)
        logger.info("%d new files, %d already ingested", len(files), skipped)
        # NOTE: both commits record the run succeeded in their one transaction (job_run
        # then leaves the row as it is).
        if not files and not (drain_inbox and _inbox_waiting(res)):
            # NOTE: nothing to stage, aggregate or load: the run still commits (quotas and
            # alerts refreshed, its job run and summary), without loading the readers.
            summary = commit_idle_ingest_run(res, run.id, skipped, ignored, now, lock_pid)
        else:
            summary = _stage_and_commit(
                res, runner, run.id, files, skipped, ignored, now, lock_pid, drain_inbox
            )
        crash_point("ingest.committed")
    logger.info(
        "ingested %d rows: %d accepted, %d duplicates, %d rejected %s; days %s",
        summary.rows,
        summary.accepted,
        summary.duplicates,
        summary.rejected,
        summary.rejected_by_reason,
        summary.days,
    )
    return summary


def _inbox_waiting(res: Resources) -> bool:
    with res.engine.connect() as conn:
        return has_pushed_events(conn)


def _stage_and_commit(
    res: Resources,
    runner: TaskRunner[Any] | None,
    run_id: uuid.UUID,
    files: list[LandingFile],
    skipped: int,
    ignored: list[str],
    now: dt.datetime,
    lock_pid: int,
    drain_inbox: bool,
) -> IngestSummary:
    """Stage the files' and the inbox's new events in the lake, aggregate the touched days,
    commit (the readers, Polars and DuckDB are imported here, not by a run with nothing new)."""
    from services.ingest.staging import (
        StageLimits,
        quarantine_unreadable_files,
        stage_events,
        validate_in_process,
    )

    lake_root = res.settings.lake_location.url
    limits = StageLimits(
        inbox_chunk_events=res.settings.inbox_chunk_events,
        compact_day_files=res.settings.lake_compact_day_files,
    )
    # NOTE: staged from the flow body, not in a task: with a Dask cluster the files'
    # validations are task runs submitted from here (a task run submitted from inside
    # another task carries that task's context to the worker, parameters included, and
    # the engine cannot be pickled), at most `window` in flight, back in file order;
    # dedupe and lake writes stay here.
    staged = stage_events(
        res.engine,
        lake_root,
        files,
        now,
        run_id,
        drain_inbox=drain_inbox,
        validate_files=validate_in_process if runner is None else _validate_on(runner),
        limits=limits,
    )
    try:
        quarantine_unreadable_files(storage.join(lake_root, "quarantine"), staged.files)
        crash_point("ingest.lake_written")
        days, daily = aggregate_touched_days(res, staged.new_files, staged.retired)
        crash_point("ingest.aggregated")
        return commit_ingest_run(res, run_id, staged, days, daily, skipped, ignored, now, lock_pid)
    finally:
        # NOTE: the commit continued the index writer's transaction; any failure before it
        # rolls the run's index rows back here.
        if staged.index_writer is not None:
            staged.index_writer.close()


def _validate_on(runner: TaskRunner[Any]) -> ValidateFiles:
    """Per-file read + validation as `validate_landing_file` task runs on the cluster."""
    window = 2 * cluster_threads(runner)

    def validate(files: list[LandingFile], now: dt.datetime) -> Iterator[FileValidation]:
        params = ({"file": f, "now": now} for f in files)
        return map_in_order(runner, validate_landing_file, params, window=window)

    return validate


@flow(name="ingest_usage", log_prints=True)
def ingest_usage(paths: list[str] | None = None, drain_inbox: bool = True) -> dict[str, Any]:
    """Validate new usage files (default: the landing folder) and pushed events, append them
    to the lake, re-aggregate the touched days into usage_daily and refresh quota_usage."""
    res = resources_from_env()
    summary = run_ingest(res, paths, drain_inbox=drain_inbox)
    create_markdown_artifact(
        key="ingest-usage-summary",
        markdown=summary_markdown("Usage ingest", summary),
        description=f"{summary.accepted} accepted, {summary.rejected} rejected",
    )
    return summary.to_json()
