"""The ingest run's one transaction: everything staged becomes visible at once, or nothing.

NOTE: the readers' libraries (Polars, DuckDB, Pandera: ~1 s of imports) are imported inside
`commit_ingest` only: a run with nothing new commits with `commit_idle_run`, which needs
none of them (tallyflow ingest's start-up, issue 12 item 4).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from services import lake_guard
from services.alerts import evaluate_alerts
from services.ingest import lake
from services.ingest.discovery import StatFile, record_landing_stats
from services.ingest.reports import IngestSummary
from services.ingest.usage_daily import replace_usage_days
from services.job_runs import USAGE_LOCK_KEY, finish_job_run
from services.metrics.catalog import list_metrics
from services.quota import refresh_quota_usage
from tallyflow.core.db import driver_connection
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import copy_statement, sql

if TYPE_CHECKING:
    import polars as pl

    from services.ingest.staging import FileOutcome, Staged


def _copy_rejected(conn: sa.Connection, run_id: uuid.UUID, rejected: pl.DataFrame) -> None:
    if rejected.height == 0:
        return
    raw_conn = driver_connection(conn)
    with raw_conn.cursor().copy(copy_statement("ingest/copy_rejected_rows")) as copy:
        for r in rejected.iter_rows(named=True):
            copy.write_row(
                (
                    run_id,
                    r["source"],
                    r["file_sha256"],
                    r["row"],
                    r["reason"],
                    _clean_text(r["detail"]),
                    _clean_text(r["tenant_id"]),
                    _clean_text(r["event_id"]),
                    (r["raw"] or "").encode("utf-8", "surrogateescape"),
                )
            )


def _clean_text(value: str | None) -> str | None:
    """Postgres text cannot hold NUL; the exact bytes are kept in `raw`."""
    return value.replace("\x00", "\\u0000") if value is not None else None


def _file_counts(outcomes: list[FileOutcome]) -> list[dict[str, Any]]:
    from models.events import RejectReason

    return [
        {
            "sha256": o.file.sha256,
            "path": str(o.file.path),
            "size_bytes": o.file.size_bytes,
            "status": "quarantined" if o.unreadable else "ingested",
            "reason": RejectReason.UNREADABLE_FILE.value if o.unreadable else None,
            "rows_read": o.rows_read,
            "rows_accepted": o.accepted,
            "rows_duplicate": o.duplicates,
            "rows_rejected": o.rejected,
        }
        for o in outcomes
    ]


def commit_ingest(
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
    """One transaction: quarantine, file ledger (with the paths' size and mtime), lake
    manifest (compacted files in, the files they replace out), key index, inbox drained,
    usage days, quota refresh, job run. Before it commits, nothing of the run is visible."""
    from services.metrics.store import refresh_metric_usage

    reasons = Counter(staged.rejected.get_column("reason").to_list())
    examples: dict[str, str] = {}
    for r in staged.rejected.unique("reason", keep="first", maintain_order=True).iter_rows(
        named=True
    ):
        examples[r["reason"]] = (r["raw"] or "")[:300]
    summary = IngestSummary(
        run_id=str(run_id),
        files=len(staged.files),
        skipped_files=skipped_files,
        rows=staged.rows,
        accepted=staged.accepted,
        duplicates=staged.duplicates,
        rejected=staged.rejected.height,
        rejected_by_reason=dict(sorted(reasons.items())),
        days=[d.isoformat() for d in days],
        examples=examples,
        ignored_files=[str(p) for p in ignored_files],
    )
    if summary.rows != summary.accepted + summary.duplicates + summary.rejected:
        raise AssertionError(f"rows do not add up: {summary}")
    with _run_transaction(engine, staged) as conn:
        if lock_pid is not None:
            lake_guard.fence_run(conn, lock_key=USAGE_LOCK_KEY, lock_pid=lock_pid, run_id=run_id)
        _copy_rejected(conn, run_id, staged.rejected)
        crash_point("commit.rejected_copied")
        for row in _file_counts(staged.files):
            conn.execute(sql("ingest/insert_ingest_file"), {**row, "run_id": run_id})
        record_landing_stats(conn, [o.file for o in staged.files if isinstance(o.file, StatFile)])
        crash_point("commit.ledger_written")
        lake.list_lake_files(conn, staged.new_files, run_id)
        if staged.retired:
            retired = [f.path for f in staged.retired]
            conn.execute(sql("ingest/delete_lake_files"), {"paths": retired})
            conn.execute(
                sql("ingest/insert_retired_lake_files"), {"paths": retired, "run_id": run_id}
            )
        crash_point("commit.manifest_written")
        crash_point("commit.keys_indexed")
        _mark_drained(conn, run_id, staged.inbox_ids)
        replace_usage_days(conn, daily, days)
        crash_point("commit.usage_replaced")
        # NOTE: billable metrics before quotas (a quota on a metric reads its total)
        refreshed = refresh_metric_usage(conn, lake_root, days, now)
        summary = dataclasses.replace(summary, metric_unreadable=refreshed.unreadable)
        _refresh_quotas_and_finish(conn, run_id, summary, now)
    crash_point("commit.committed")
    if staged.retired:
        # NOTE: after the commit (a crash in between: the next run's sweep moves them)
        with engine.connect() as conn:
            lake_guard.sweep_retired_files(conn, lake_root)
    return summary


@contextlib.contextmanager
def _run_transaction(engine: Engine, staged: Staged) -> Iterator[sa.Connection]:
    """The commit's transaction: the one its index writer opened when staging began (the
    run's new keys already in it), else (nothing staged) a new one."""
    if staged.index_writer is not None:
        with staged.index_writer.transaction() as conn:
            yield conn
    else:
        with engine.begin() as conn:
            yield conn


def commit_idle_run(
    engine: Engine,
    run_id: uuid.UUID,
    skipped_files: int,
    ignored_files: list[str],
    now: dt.datetime,
    lock_pid: int | None = None,
) -> IngestSummary:
    """The commit of a run that found nothing to stage (no new landing file, no pushed
    event): what `commit_ingest` does with nothing staged and no day touched (fence, quota
    refresh, alerts, job run; the same summary), without the readers' imports."""
    summary = IngestSummary(
        run_id=str(run_id),
        files=0,
        skipped_files=skipped_files,
        rows=0,
        accepted=0,
        duplicates=0,
        rejected=0,
        rejected_by_reason={},
        days=[],
        examples={},
        ignored_files=[str(p) for p in ignored_files],
    )
    with engine.begin() as conn:
        if lock_pid is not None:
            lake_guard.fence_run(conn, lock_key=USAGE_LOCK_KEY, lock_pid=lock_pid, run_id=run_id)
        # NOTE: refresh_metric_usage with no day touched recomputes nothing and reports 0
        # unreadable values for every metric; said here, so its module (DuckDB, Polars) is
        # not imported (a test holds the two paths to the same summary).
        unreadable = {m.code: 0 for m in list_metrics(conn)}
        summary = dataclasses.replace(summary, metric_unreadable=unreadable)
        _refresh_quotas_and_finish(conn, run_id, summary, now)
    crash_point("commit.committed")
    return summary


def _refresh_quotas_and_finish(
    conn: sa.Connection, run_id: uuid.UUID, summary: IngestSummary, now: dt.datetime
) -> None:
    """The end of every ingest commit: quotas, alerts, the job run marked succeeded."""
    refresh_quota_usage(conn, today=now.date(), as_of=now)
    crash_point("commit.quotas_refreshed")
    evaluate_alerts(conn, tenant_ids=None, period=BillingPeriod.of(now.date()), now=now)
    finish_job_run(conn, run_id, summary.to_json() | {"examples": summary.examples})
    crash_point("commit.before_commit")


DRAIN_CHUNK = 100_000


def _mark_drained(conn: sa.Connection, run_id: uuid.UUID, ids: pl.Series) -> None:
    """Mark exactly the inbox rows the run read, in bounded statements."""
    drained = 0
    for start in range(0, ids.len(), DRAIN_CHUNK):
        chunk = ids.slice(start, DRAIN_CHUNK).to_list()
        drained += conn.execute(
            sql("ingest/mark_inbox_events_drained"), {"run_id": run_id, "ids": chunk}
        ).rowcount
    lake_guard.check_drained(run_id, read=ids.len(), drained=drained)
