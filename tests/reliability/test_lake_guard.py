"""Lake safety with real runs in child processes: a lake belongs to one database, a sweep
moves only this database's failed runs' files (to the trash), and a run that lost the usage
lock cannot commit (issue 11)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from services import lake_guard
from services.job_runs import USAGE_LOCK_KEY, finish_job_run, start_job_run
from tallyflow.core.db import get_engine, to_libpq_url
from tallyflow.core.settings import Settings
from tallyflow.synthetic.generate import GenerateSummary, UsageSpec, generate_usage, read_oracle
from tests.reliability import harness
from tests.reliability.harness import Expected, assert_consistent

MONTH = "2026-10"


@pytest.fixture(scope="module")
def usage(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateSummary, Expected]:
    root = tmp_path_factory.mktemp("lake-guard").resolve()
    summary = generate_usage(
        root / "landing",
        UsageSpec(month=MONTH, tenants=4, events=1500, seed=7, duplicates=0.02, bad=0.03),
        format="jsonl",
        files_by="rows",
        rows_per_file=500,
        oracle_path=root / "oracle.parquet",
    )
    expected = Expected()
    expected.add_oracle(read_oracle(root / "oracle.parquet"))
    expected.add_generated(summary)
    return summary, expected


@pytest.fixture
def second_database(pg_server_url: str, template_database: str) -> Iterator[str]:
    """Another fresh, migrated database on the same server (a worker's wrong database)."""
    name = f"tf_second_{uuid.uuid4().hex[:12]}"
    admin = to_libpq_url(pg_server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def lake_state(lake: Path) -> dict[str, tuple[int, str, int]]:
    """Every file of the lake (marker included): size, content hash, mtime."""
    return {
        str(p.relative_to(lake)): (
            p.stat().st_size,
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in lake.rglob("*")
        if p.is_file()
    }


def last_run(engine: Engine) -> sa.Row[tuple[str, str | None]]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT status, error FROM job_runs ORDER BY started_at DESC LIMIT 1")
        ).one()


def test_lake_of_another_database_is_refused_and_left_untouched(
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    second_database: str,
    usage: tuple[GenerateSummary, Expected],
) -> None:
    summary, expected = usage
    work = tmp_path / "work"
    harness.run_ok("ingest", settings, work, {"paths": [summary.out_dir]})
    lake = settings.lake_path
    assert (lake / lake_guard.MARKER).exists()
    # a leftover of a crashed run of the owning database: the other database must not sweep it
    day = next((lake / "events").iterdir())
    planted = day / f"{uuid.uuid4()}-0.parquet"
    planted.write_bytes(b"not yet committed")
    before = lake_state(lake)

    other = settings.model_copy(update={"database_url": second_database})
    other_engine = get_engine(other)
    for job, args in [
        ("ingest", {"paths": [summary.out_dir]}),
        ("backfill", {"start": f"{MONTH}-01", "end": f"{MONTH}-31"}),
    ]:
        code, child = harness.run(job, other, work, args)
        assert code != 0, f"{job} against another database succeeded: {child.points()}"
        status, error = last_run(other_engine)
        assert status == "failed"
        assert error is not None and "LakeOwnedElsewhere" in error and str(lake) in error
        assert lake_state(lake) == before, f"{job} changed the lake"
    with other_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM usage_daily")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM lake_files")).scalar_one() == 0

    # without the marker (a lake from before markers): still refused, nothing written
    (lake / lake_guard.MARKER).unlink()
    before = lake_state(lake)
    code, _ = harness.run("ingest", other, work, {"paths": [summary.out_dir]})
    assert code != 0
    assert "lists none of them" in (last_run(other_engine).error or "")
    assert lake_state(lake) == before

    # the owning database adopts its own unmarked lake again, and its data is intact
    harness.run_ok("ingest", settings, work, {"paths": [summary.out_dir]})
    assert (lake / lake_guard.MARKER).exists()
    assert planted.exists()  # not a failed run of this database: left alone
    planted.unlink()
    assert_consistent(engine, lake, expected)


def test_a_run_that_lost_its_lock_cannot_commit(
    settings: Settings, engine: Engine, tmp_path: Path, usage: tuple[GenerateSummary, Expected]
) -> None:
    """Run 1 pauses before its commit; its lock session is killed (pg_terminate_backend)
    while run 2 waits for the lock; run 2 ingests everything; run 1's commit is refused."""
    summary, expected = usage
    work = tmp_path / "work"
    go = tmp_path / "go"
    first = harness.start(
        "ingest",
        settings,
        work,
        {"paths": [summary.out_dir]},
        {"TALLYFLOW_FAULT_PAUSE_AT": "ingest.aggregated", "TALLYFLOW_FAULT_PAUSE_FILE": str(go)},
    )
    first.wait_for_point("ingest.aggregated")
    second = harness.start("ingest", settings, work, {"paths": [summary.out_dir]})
    held = sa.text("SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND objid = :key")
    deadline = time.monotonic() + harness.CHILD_TIMEOUT_S
    while True:  # until run 2 waits for the lock run 1 holds
        with engine.connect() as conn:
            locks = conn.execute(held, {"key": USAGE_LOCK_KEY}).all()
        if any(not granted for _, granted in locks):
            break
        assert time.monotonic() < deadline, "run 2 never waited for the lock"
        time.sleep(0.01)
    (holder,) = [pid for pid, granted in locks if granted]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": holder}).scalar()
    assert second.join() == 0
    go.touch()
    assert first.join() != 0

    with engine.connect() as conn:
        runs = conn.execute(
            sa.text("SELECT id, status, error FROM job_runs ORDER BY started_at")
        ).all()
    assert [r.status for r in runs] == ["failed", "succeeded"]
    assert "RunFenced" in (runs[0].error or "") and "lost the usage lock" in runs[0].error
    # run 2's result is the whole truth, once; run 1's files went to the trash, not the lake
    assert second.result()["accepted"] == expected.accepted
    assert_consistent(engine, settings.lake_path, expected)
    trashed = list((settings.lake_path / "trash").rglob("*.parquet"))
    assert trashed and all(str(runs[0].id) in str(p) for p in trashed)


def test_sweep_moves_only_this_databases_failed_runs_files(
    settings: Settings, engine: Engine
) -> None:
    lake = settings.lake_path
    failed = start_job_run(engine, "ingest_usage", {})
    succeeded = start_job_run(engine, "ingest_usage", {})
    with engine.begin() as conn:
        finish_job_run(conn, failed, {}, status="failed", error="boom")
        finish_job_run(conn, succeeded, {})
        conn.execute(
            sa.text(
                "INSERT INTO lake_files (path, usage_date, row_count, run_id)"
                " VALUES (:p, '2026-10-01', 1, :r)"
            ),
            {"p": f"events/usage_date=2026-10-01/{succeeded}-0.parquet", "r": succeeded},
        )
    day = lake / "events" / "usage_date=2026-10-01"
    day.mkdir(parents=True)
    files = {
        "failed": day / f"{failed}-0.parquet",
        "failed_temp": day / f".{failed}-1.parquet.tmp",
        "listed": day / f"{succeeded}-0.parquet",
        "succeeded_unlisted": day / f"{succeeded}-1.parquet",
        "unknown_run": day / f"{uuid.uuid4()}-0.parquet",  # another database's run
        "not_a_run": day / "notes.txt",
    }
    for path in files.values():
        path.write_bytes(b"x")
    with engine.connect() as conn:
        result = lake_guard.sweep_failed_run_files(conn, lake, retention_days=7)
    trash = lake / "trash" / str(failed) / "events" / "usage_date=2026-10-01"
    assert sorted(result.moved) == sorted(
        [str(trash / files["failed"].name), str(trash / files["failed_temp"].name)]
    )
    assert all(Path(p).exists() for p in result.moved)
    for name in ("listed", "succeeded_unlisted", "unknown_run", "not_a_run"):
        assert files[name].exists(), name
    assert not files["failed"].exists() and not files["failed_temp"].exists()

    # retention: kept for 7 days, purged after
    now = time.time()
    assert lake_guard.purge_trash(lake, retention_days=7, now=now + 6 * 86_400) == []
    assert (lake / "trash" / str(failed)).exists()
    purged = lake_guard.purge_trash(lake, retention_days=7, now=now + 8 * 86_400)
    assert purged == [str(lake / "trash" / str(failed))] and not Path(purged[0]).exists()


def test_the_fence_checks_the_lock_holder_and_the_drained_count(engine: Engine) -> None:
    run_id = start_job_run(engine, "ingest_usage", {})
    with engine.connect() as lock_conn:
        lock_conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": USAGE_LOCK_KEY})
        pid = lock_conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with engine.begin() as conn:  # held by the lock session, the run running: passes
            lake_guard.fence_run(conn, lock_key=USAGE_LOCK_KEY, lock_pid=pid, run_id=run_id)
        with (
            pytest.raises(lake_guard.RunFenced, match="lost the usage lock"),
            engine.begin() as conn,
        ):
            lake_guard.fence_run(conn, lock_key=USAGE_LOCK_KEY, lock_pid=pid + 1, run_id=run_id)
        with engine.begin() as conn:  # a later run marked this one failed (interrupted)
            finish_job_run(conn, run_id, {}, status="failed", error="interrupted")
        with pytest.raises(lake_guard.RunFenced, match="is failed"), engine.begin() as conn:
            lake_guard.fence_run(conn, lock_key=USAGE_LOCK_KEY, lock_pid=pid, run_id=run_id)
        lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": USAGE_LOCK_KEY})
    lake_guard.check_drained(run_id, read=3, drained=3)
    with pytest.raises(lake_guard.RunFenced, match="read 3 pushed events but could drain only 2"):
        lake_guard.check_drained(run_id, read=3, drained=2)
