"""`services.job_runs.job_run`: the one way a run records its start, outcome and error, on a
real Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.job_runs import error_text, finish_job_run, job_run


def row(engine: Engine, run_id: uuid.UUID) -> sa.Row[Any]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT job, status, summary, error, flow_run_id, finished_at, parameters"
                " FROM job_runs WHERE id = :id"
            ),
            {"id": run_id},
        ).one()


def test_start_is_committed_at_once_and_success_records_the_summary(engine: Engine) -> None:
    with job_run(engine, "deliver_webhooks", {"limit": 5}, flow_run_id="fr-1") as run:
        during = row(engine, run.id)  # another connection sees the run while it runs
        run.succeed({"delivered": 2})
    assert (during.status, during.finished_at, during.parameters) == ("running", None, {"limit": 5})
    done = row(engine, run.id)
    assert (done.job, done.status, done.summary, done.error) == (
        "deliver_webhooks",
        "succeeded",
        {"delivered": 2},
        None,
    )
    assert done.flow_run_id == "fr-1" and done.finished_at is not None


def test_a_block_without_a_summary_still_succeeds(engine: Engine) -> None:
    with job_run(engine, "finalize_invoices", {}, flow_run_id=None) as run:
        pass
    assert (row(engine, run.id).status, row(engine, run.id).summary) == ("succeeded", {})


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        # an ordinary error: its type and message
        (ValueError("no such period"), "ValueError: no such period"),
        # an interrupt (BaseException, no message): recorded too, by its type
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        # jsonb/text cannot hold U+0000: shown as U+2400
        (RuntimeError("bad \x00 byte"), "RuntimeError: bad \u2400 byte"),
    ],
)
def test_any_failure_is_recorded_once_one_way_and_re_raised(
    engine: Engine, error: BaseException, recorded: str
) -> None:
    with (
        pytest.raises(type(error)) as raised,
        job_run(engine, "close_billing_period", {}, flow_run_id=None) as run,
    ):
        run.succeed({"never": "recorded"})
        raise error
    assert raised.value is error
    failed = row(engine, run.id)
    assert (failed.status, failed.error, failed.summary) == ("failed", recorded, {})
    assert error_text(error) == recorded.replace("\u2400", "\x00")


def test_success_inside_the_runs_transaction_is_atomic_with_it(engine: Engine) -> None:
    # the commit transaction rolls back after recording success: the run is failed
    with (
        pytest.raises(RuntimeError, match="commit refused"),
        job_run(engine, "backfill_usage", {}, flow_run_id=None) as run,
        engine.begin() as conn,
    ):
        run.succeed_in(conn, {"days": 3})
        raise RuntimeError("commit refused")
    assert (row(engine, run.id).status, row(engine, run.id).summary) == ("failed", {})


def test_a_committed_success_is_never_overwritten(engine: Engine) -> None:
    # an error after the run's commit (an interrupt on the way out) leaves the run succeeded
    with (
        pytest.raises(KeyboardInterrupt),
        job_run(engine, "ingest_usage", {}, flow_run_id=None) as run,
    ):
        with engine.begin() as conn:
            run.succeed_in(conn, {"accepted": 7})
        raise KeyboardInterrupt
    done = row(engine, run.id)
    assert (done.status, done.summary, done.error) == ("succeeded", {"accepted": 7}, None)
    # and the end of the block does not replace the commit's summary with its own
    with job_run(engine, "ingest_usage", {}, flow_run_id=None) as run, engine.begin() as conn:
        run.succeed_in(conn, {"accepted": 8})
    assert row(engine, run.id).summary == {"accepted": 8}


def test_a_run_marked_interrupted_keeps_failed_and_gets_its_own_error(engine: Engine) -> None:
    # a later run marked this one failed ('interrupted') while it was cut off from its lock
    with job_run(engine, "ingest_usage", {}, flow_run_id=None) as run, engine.begin() as conn:
        finish_job_run(conn, run.id, {}, status="failed", error="interrupted: ...")
    assert (row(engine, run.id).status, row(engine, run.id).error) == ("failed", "interrupted: ...")
    with (
        pytest.raises(RuntimeError),
        job_run(engine, "ingest_usage", {}, flow_run_id=None) as run,
    ):
        with engine.begin() as conn:
            finish_job_run(conn, run.id, {}, status="failed", error="interrupted: ...")
        raise RuntimeError("RunFenced: lost the usage lock")
    assert row(engine, run.id).error == "RuntimeError: RunFenced: lost the usage lock"
