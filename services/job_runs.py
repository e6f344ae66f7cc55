"""Job-run records and the usage write lock."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tallyflow.core.sqlfiles import sql

# NOTE: one key for every job that writes usage (ingest, backfill): they touch the same
# days and the same lake, so they run one at a time. A killed run's session ends and
# Postgres releases the lock with it.
USAGE_LOCK_KEY: Final = 7_366_001


@contextmanager
def usage_write_lock(engine: Engine) -> Iterator[int]:
    """Hold the usage advisory lock (waits for a running ingest/backfill to finish); yields
    the lock session's backend pid, which the commit fence checks (services/lake_guard.py).

    Once held, no other ingest or backfill is alive: a run still marked 'running' was
    killed before it could record its outcome, and is marked failed ('interrupted')."""
    with engine.connect() as conn:
        conn.execute(sql("runs/lock_usage_writes"), {"key": USAGE_LOCK_KEY})
        pid = int(conn.execute(sql("ops/select_backend_pid")).scalar_one())
        conn.execute(sql("runs/fail_interrupted_usage_runs"))
        conn.commit()
        try:
            yield pid
        finally:
            try:
                conn.execute(sql("runs/unlock_usage_writes"), {"key": USAGE_LOCK_KEY})
                conn.commit()
            except sa.exc.DBAPIError:
                # NOTE: the lock session is gone (killed, network): so is the lock. The
                # run's own error, if any, is the one worth raising.
                logging.getLogger("tallyflow.lake").warning("usage lock session was lost")


def start_job_run(
    engine: Engine, job: str, parameters: dict[str, Any], flow_run_id: str | None = None
) -> uuid.UUID:
    run_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            sql("runs/insert_job_run"),
            {
                "id": run_id,
                "job": job,
                "parameters": json.dumps(parameters, default=str),
                "flow_run_id": flow_run_id,
            },
        )
    return run_id


def jsonb_safe(value: Any) -> Any:
    """`value` with U+0000 shown as U+2400 in every string: Postgres text and jsonb cannot
    hold it, and a rejected line's example or an error message may (the bytes of the line
    itself are kept in the quarantine copy of its file)."""
    if isinstance(value, str):
        return value.replace("\x00", "\u2400")
    if isinstance(value, dict):
        return {jsonb_safe(k): jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonb_safe(v) for v in value]
    return value


def finish_job_run(
    conn: sa.Connection,
    run_id: uuid.UUID,
    summary: dict[str, Any],
    *,
    status: str = "succeeded",
    error: str | None = None,
) -> None:
    conn.execute(
        sql("runs/finish_job_run"),
        {
            "id": run_id,
            "status": status,
            "summary": json.dumps(jsonb_safe(summary), default=str),
            "error": None if error is None else jsonb_safe(error),
        },
    )


def error_text(error: BaseException) -> str:
    """How every run records its error: `Type: message` (the type alone without a message,
    as for a KeyboardInterrupt)."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def fail_job_run(engine: Engine, run_id: uuid.UUID, error: BaseException) -> None:
    """Record a failure in its own transaction (the run's own transaction rolled back).

    NOTE: a run whose success is already committed (the ingest commit records it in the run's
    one transaction) keeps it: an error after that commit (an interrupt, the retired lake
    files' move to the trash failing) changes nothing the run wrote. A row already marked
    failed ('interrupted' by a later run) gets the run's own error, which says more."""
    with engine.begin() as conn:
        if _locked_status(conn, run_id) != "succeeded":
            finish_job_run(conn, run_id, {}, status="failed", error=error_text(error))


def _locked_status(conn: sa.Connection, run_id: uuid.UUID) -> str | None:
    status = conn.execute(sql("lake/lock_job_run"), {"id": run_id}).scalar_one_or_none()
    return None if status is None else str(status)


@dataclass
class JobRun:
    """The job_runs row of the run inside a `job_run` block."""

    id: uuid.UUID
    summary: dict[str, Any] = field(default_factory=dict)

    def succeed(self, summary: Mapping[str, Any]) -> None:
        """The summary recorded (status succeeded, own transaction) when the block ends."""
        self.summary = dict(summary)

    def succeed_in(self, conn: sa.Connection, summary: Mapping[str, Any]) -> None:
        """Record success inside the run's own commit transaction: the row says succeeded
        exactly when the run's writes are committed."""
        finish_job_run(conn, self.id, dict(summary))


@contextmanager
def job_run(
    engine: Engine, job: str, parameters: Mapping[str, Any], *, flow_run_id: str | None
) -> Iterator[JobRun]:
    """The one way a job records its run: the row is inserted 'running' (committed at
    once, so a crash leaves a trace); when the block ends, the run is marked succeeded with
    the summary given to `JobRun.succeed` (unless `succeed_in` or the ingest commit already
    recorded it); when it raises anything (BaseException: a KeyboardInterrupt or a Prefect
    cancellation is recorded too), the error is recorded as `error_text` and re-raised.

    Ingest and backfill enter it inside `usage_write_lock`, so the row is inserted after
    the lock marked the dead runs 'interrupted' and the outcome is recorded before the lock
    is released."""
    run = JobRun(start_job_run(engine, job, dict(parameters), flow_run_id))
    try:
        yield run
    except BaseException as exc:
        try:
            fail_job_run(engine, run.id, exc)
        except Exception:
            # NOTE: the database is unreachable: the run's own error is the one worth
            # raising; an ingest/backfill row left 'running' is marked interrupted by the
            # next run.
            logging.getLogger("tallyflow.runs").exception("could not record run %s failed", run.id)
        raise
    with engine.begin() as conn:
        if _locked_status(conn, run.id) == "running":
            finish_job_run(conn, run.id, run.summary)
