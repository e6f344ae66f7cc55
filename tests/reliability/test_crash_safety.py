"""Crash safety: the ingest and the invoice run killed with SIGKILL at many points, then
rerun; the end state must equal an oracle computed from the input files by the generator.

Every ingest test starts from the same state: batch A (JSON lines, every kind of bad row,
duplicates, conflicts, a late file) already ingested. The run under test ingests batch B
(CSV, same month, so it re-aggregates A's days) plus pushed events waiting in the inbox;
it is killed, then rerun to completion, while a reader polls per-day totals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.ingest.inbox import push_events
from tallyflow.core.settings import Settings
from tallyflow.synthetic.generate import GenerateSummary, UsageSpec, generate_usage, read_oracle
from tests.reliability import harness
from tests.reliability.harness import DayReader, Expected, assert_consistent, day_totals

# NOTE: every case runs real flow runs in child processes (10-20 s each on the shared
# 2-core machine since the children call the real Prefect flows): slow for developers.
pytestmark = pytest.mark.slow

MONTH = "2026-10"
PUSHED_AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # the pushes' "now", after MONTH
PUSHED_TENANT = "pushed-co"


@dataclass(frozen=True)
class Landing:
    a: GenerateSummary
    b: GenerateSummary
    expected_a: Expected
    expected: Expected  # A + B + pushed events
    pushed: list[dict[str, Any]]


def _pushed_events() -> list[dict[str, Any]]:
    """Events for the inbox: a tenant of their own, spread over the month's days."""
    events = []
    for i in range(60):
        day = 1 + i % 28
        events.append(
            {
                "event_id": f"push-{i}",
                "tenant_id": PUSHED_TENANT,
                "metric": "api.calls",
                "quantity": f"{i}.125",
                "occurred_at": f"{MONTH}-{day:02d}T{i % 24:02d}:30:00Z",
            }
        )
    return events


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    root = tmp_path_factory.mktemp("crash-landing").resolve()
    shares = {"duplicates": 0.02, "conflicts": 0.01, "late": 0.03, "bad": 0.05}
    a = generate_usage(
        root / "a",
        UsageSpec(month=MONTH, tenants=6, events=3000, seed=11, **shares),
        format="jsonl",
        files_by="rows",
        rows_per_file=1000,
        oracle_path=root / "oracle-a.parquet",
    )
    b = generate_usage(
        root / "b",
        UsageSpec(month=MONTH, tenants=6, events=2000, seed=12, **shares),
        format="csv",
        files_by="rows",
        rows_per_file=700,
        oracle_path=root / "oracle-b.parquet",
    )
    expected_a, expected = Expected(), Expected()
    expected_a.add_oracle(read_oracle(root / "oracle-a.parquet"))
    expected_a.add_generated(a)
    for oracle in ("oracle-a.parquet", "oracle-b.parquet"):
        expected.add_oracle(read_oracle(root / oracle))
    expected.add_generated(a)
    expected.add_generated(b)
    pushed = _pushed_events()
    for e in pushed:
        at = dt.datetime.fromisoformat(e["occurred_at"])
        q = Decimal(e["quantity"])
        expected.add_day((PUSHED_TENANT, e["metric"], at.date()), q, 1, q, at, at)
    return Landing(a, b, expected_a, expected, pushed)


@dataclass
class Stage:
    settings: Settings
    engine: Engine
    work: Path
    landing: Landing

    @property
    def args(self) -> dict[str, Any]:
        return {"paths": [self.landing.b.out_dir]}

    def rerun_and_check(
        self, reader: DayReader, *, kills: int, faults: dict[str, str] | None = None
    ) -> None:
        code, child = harness.run("ingest", self.settings, self.work, self.args, faults)
        assert code == 0, f"the rerun failed with exit code {code} after {child.points()}"
        deadline = time.monotonic() + 10
        while reader.seen_new == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        reader.stop.set()
        reader.join()
        reader.check()
        assert reader.seen_new > 0
        assert_consistent(
            self.engine, self.settings.lake_path, self.landing.expected, len(self.landing.pushed)
        )
        with self.engine.connect() as conn:
            statuses = conn.execute(
                sa.text("SELECT status, count(*) FROM job_runs GROUP BY status")
            ).all()
        # stage A, the runs killed before their commit (marked failed when the next run
        # starts), and the run that committed batch B; a run killed after its commit
        # succeeded, and its rerun found nothing new (also succeeded)
        assert sum(n for s, n in statuses if s == "failed") <= kills
        assert dict(statuses).get("succeeded", 0) >= 2


@pytest.fixture
def stage(settings: Settings, engine: Engine, tmp_path: Path, landing: Landing) -> Stage:
    """Batch A ingested and checked; B's pushed events waiting in the inbox."""
    work = tmp_path / "work"
    summary = harness.run_ok("ingest", settings, work, {"paths": [landing.a.out_dir]})
    assert summary["rejected_by_reason"] == landing.a.rejected_by_reason
    assert_consistent(engine, settings.lake_path, landing.expected_a)
    with engine.begin() as conn:
        outcome = push_events(conn, landing.pushed, now=PUSHED_AT)
    assert outcome.rejected == [] and outcome.duplicates == 0
    return Stage(settings, engine, work, landing)


def _reader(stage: Stage) -> DayReader:
    with stage.engine.connect() as conn:
        old = day_totals(conn)
    assert old == stage.landing.expected_a.day_totals()
    return DayReader(stage.engine, old, stage.landing.expected.day_totals())


def _state_is_old_or_new(stage: Stage, reader: DayReader) -> None:
    """Right after a kill: the whole of the old state or the whole of the new, nothing between."""
    with stage.engine.connect() as conn:
        now = day_totals(conn)
    assert now in (reader.old, reader.new)


# Every named step boundary of an ingest run (tallyflow/faults.py calls in the pipeline).
KILL_POINTS = [
    "ingest.started",  # job run recorded, lock held
    "ingest.orphans_removed",
    "ingest.discovered",
    "ingest.validated",  # first file validated
    "ingest.deduped",  # first file deduped
    "ingest.lake_slice",  # every file deduped, the run's new events about to be written
    "lake.temp_written@1",  # first lake file written under its temp name, not renamed
    "lake.file_written@1",  # first lake file in place (not in the manifest)
    "lake.temp_written@12",
    "lake.file_written@20",
    "ingest.lake_written",  # every lake file in place
    "ingest.aggregated",
    "commit.rejected_copied",  # inside the transaction: quarantine COPY done
    "commit.ledger_written",
    "commit.manifest_written",
    "commit.usage_replaced",  # usage days replaced, not committed
    "commit.quotas_refreshed",
    "commit.before_commit",  # job run marked succeeded, COMMIT not sent
    "ingest.committed",  # committed, lock still held
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_ingest_killed_at_a_step_then_rerun(stage: Stage, point: str) -> None:
    with _reader(stage) as reader:
        harness.run_killed_at("ingest", stage.settings, stage.work, point, stage.args)
        _state_is_old_or_new(stage, reader)
        if point != "ingest.committed":
            assert day_totals_now(stage) == reader.old  # nothing of the killed run visible
        stage.rerun_and_check(reader, kills=1)


# A run that compacts every day it touches (at most 1 file a day): batch B's run merges
# each of A's day files with its own. Killed while compacting, inside the commit, and
# between the commit and the sweep of the replaced files; the rerun ends in the same state.
COMPACT = {"TALLYFLOW_LAKE_COMPACT_DAY_FILES": "1"}
COMPACTION_KILL_POINTS = [
    "lake.compacting",  # the run's own day files written, the first compaction not begun
    "lake.compacted@3",  # three days compacted (not listed)
    "commit.manifest_written",  # compacted files listed, the old ones unlisted: not committed
    "commit.keys_indexed",
    "commit.committed",  # committed; the replaced files not yet in the trash
]


@pytest.mark.parametrize("point", COMPACTION_KILL_POINTS)
def test_ingest_with_compaction_killed_then_rerun(stage: Stage, point: str) -> None:
    with _reader(stage) as reader:
        faults = COMPACT | {"TALLYFLOW_CRASH_AT": point}
        code, child = harness.run("ingest", stage.settings, stage.work, stage.args, faults)
        assert code == -signal.SIGKILL, f"expected a kill at {point}: {child.points()}"
        _state_is_old_or_new(stage, reader)
        if point != "commit.committed":
            assert day_totals_now(stage) == reader.old
        stage.rerun_and_check(reader, kills=1, faults=COMPACT)
    with stage.engine.connect() as conn:
        per_day = conn.execute(
            sa.text("SELECT usage_date, count(*) FROM lake_files GROUP BY usage_date")
        ).all()
        retired = conn.execute(sa.text("SELECT count(*) FROM lake_files_retired")).scalar_one()
    assert per_day and all(n == 1 for _, n in per_day), "a touched day left uncompacted"
    assert retired == 0


def day_totals_now(stage: Stage) -> Any:
    with stage.engine.connect() as conn:
        return day_totals(conn)


# Kills sent from outside after a random sleep, while the lake files are being written
# (each file slowed by 25 ms) or while the commit transaction runs (each statement group
# slowed by 200 ms). The seed is fixed: the same draws on every run of the suite.
RANDOM_KILLS = [("lake", "ingest.lake_slice", "lake.", 25, seed) for seed in range(4)] + [
    ("load", "ingest.aggregated", "commit.", 200, seed) for seed in range(4)
]


@pytest.mark.parametrize(
    ("phase", "after", "slow", "delay_ms", "seed"),
    RANDOM_KILLS,
    ids=[f"{k[0]}-{k[4]}" for k in RANDOM_KILLS],
)
def test_ingest_killed_at_a_random_time_then_rerun(
    stage: Stage, phase: str, after: str, slow: str, delay_ms: int, seed: int
) -> None:
    steps = 2 * 31 if phase == "lake" else 6  # points slowed down in that phase
    window = steps * delay_ms / 1000
    sleep = random.Random(f"{phase}-{seed}").uniform(0.25, window * 0.75)
    faults = {"TALLYFLOW_FAULT_DELAY_MS": str(delay_ms), "TALLYFLOW_FAULT_DELAY_AT": slow}
    with _reader(stage) as reader:
        child = harness.start("ingest", stage.settings, stage.work, stage.args, faults)
        child.wait_for_point(after)
        time.sleep(sleep)
        child.kill()
        assert child.join() == -signal.SIGKILL, "the run finished before the kill"
        last = child.points()[-1]
        assert last.startswith(slow), f"kill landed after {last}, not during the {phase}"
        assert day_totals_now(stage) == reader.old
        stage.rerun_and_check(reader, kills=1)


def test_ingest_killed_again_and_again(stage: Stage) -> None:
    """Five runs in a row, each killed somewhere else, then one completes."""
    points = [
        "lake.file_written@5",
        "commit.usage_replaced",
        "ingest.aggregated",
        "lake.temp_written@30",
        "commit.before_commit",
    ]
    with _reader(stage) as reader:
        for point in points:
            harness.run_killed_at("ingest", stage.settings, stage.work, point, stage.args)
            assert day_totals_now(stage) == reader.old
        with stage.engine.connect() as conn:
            running = conn.execute(
                sa.text("SELECT count(*) FROM job_runs WHERE status = 'running'")
            ).scalar_one()
        assert running == 1  # the last killed run; each rerun marked the one before failed
        stage.rerun_and_check(reader, kills=len(points))
    with stage.engine.connect() as conn:
        failed = conn.execute(
            sa.text("SELECT error FROM job_runs WHERE status = 'failed'")
        ).scalars()
        assert [e.startswith("interrupted") for e in failed] == [True] * len(points)


def test_the_prefect_flow_killed_then_rerun(stage: Stage, prefect_harness: None) -> None:
    """The deployed path: the `ingest_usage` Prefect flow (tasks through Prefect's engine,
    reporting to the session's Prefect server) in a fresh Python process, killed inside its
    commit; rerun as a flow; the same end state as the harness's runs."""
    from prefect.settings import PREFECT_API_URL

    from flows.ingest_usage import ingest_usage

    trace = stage.work / "flow.trace"
    env = {
        **os.environ,
        **harness.settings_env(stage.settings),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "TALLYFLOW_CRASH_AT": "commit.usage_replaced",
        "TALLYFLOW_FAULT_TRACE": str(trace),
    }
    code = (
        "import sys; from flows.ingest_usage import ingest_usage; ingest_usage(paths=sys.argv[1:])"
    )
    with _reader(stage) as reader:
        done = subprocess.run(
            [sys.executable, "-c", code, stage.landing.b.out_dir],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            timeout=300,
        )
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
        assert trace.read_text().split()[-2] == "commit.usage_replaced"
        assert day_totals_now(stage) == reader.old
        result = ingest_usage(paths=[stage.landing.b.out_dir])
        assert result["rows"] == result["accepted"] + result["duplicates"] + result["rejected"]
        deadline = time.monotonic() + 10
        while reader.seen_new == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    reader.check()
    pushed = len(stage.landing.pushed)
    assert_consistent(stage.engine, stage.settings.lake_path, stage.landing.expected, pushed)


# --- the backfill -------------------------------------------------------------------------
# After batch A, usage_daily drifts from the lake (every row of 12 days off by one event
# and 1.5 units, as a lost late event or a manual edit would leave it). A backfill of the
# month computes every day from the lake, then replaces all of them in one transaction;
# killed anywhere, no day has changed; the rerun fixes all.

BACKFILL = {"start": f"{MONTH}-01", "end": f"{MONTH}-31"}


@pytest.fixture
def drifted(stage: Stage) -> DayReader:
    with stage.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE usage_daily SET quantity_sum = quantity_sum + 1.5,"
                " event_count = event_count + 1 WHERE extract(day FROM usage_date) % 3 = 0"
            )
        )
        old = day_totals(conn)
    truth = stage.landing.expected_a.day_totals()
    assert sum(old[d] != truth[d] for d in truth) >= 10
    return DayReader(stage.engine, old, truth, whole_snapshot=False)


def _backfill_then_check(stage: Stage, reader: DayReader) -> None:
    summary = harness.run_ok("backfill", stage.settings, stage.work, BACKFILL)
    assert summary["days"] == 31
    reader.stop.set()
    reader.join()
    reader.check()
    waiting = len(stage.landing.pushed)  # a backfill does not drain the inbox
    assert_consistent(
        stage.engine, stage.settings.lake_path, stage.landing.expected_a, waiting=waiting
    )


@pytest.mark.parametrize(
    "point",
    [
        "backfill.days_computed",  # every day computed, nothing written
        "backfill.day_replaced@1",  # first day replaced, not committed
        "backfill.day_replaced@20",
        "backfill.before_commit",  # every day replaced, quotas and job run written: no commit
    ],
)
def test_backfill_killed_then_rerun(stage: Stage, drifted: DayReader, point: str) -> None:
    with drifted as reader:
        harness.run_killed_at("backfill", stage.settings, stage.work, point, BACKFILL)
        assert day_totals_now(stage) == reader.old  # one transaction: no day changed
        _backfill_then_check(stage, reader)


def test_backfill_killed_at_a_random_time_then_rerun(stage: Stage, drifted: DayReader) -> None:
    faults = {"TALLYFLOW_FAULT_DELAY_MS": "40", "TALLYFLOW_FAULT_DELAY_AT": "backfill.day"}
    with drifted as reader:
        child = harness.start("backfill", stage.settings, stage.work, BACKFILL, faults)
        child.wait_for_point("backfill.day_replaced")
        time.sleep(random.Random(7).uniform(0.3, 1.5))
        child.kill()
        assert child.join() == -signal.SIGKILL
        assert child.points()[-1].startswith("backfill.day")
        _backfill_then_check(stage, reader)


# --- the invoice run ----------------------------------------------------------------------

PERIOD = harness.INVOICE_PERIOD


@pytest.fixture
def drafted(settings: Settings, engine: Engine, tmp_path: Path) -> tuple[Path, Any, Any]:
    """Drafts from an uninterrupted run; then late usage that the next run must price."""
    harness.seed_billing(engine)
    work = tmp_path / "work"
    result = harness.run_ok("invoices", settings, work, {"period": PERIOD})
    assert result["generated"] == len(harness.INVOICE_TENANTS)
    before, ids = harness.current_invoice_content(engine)
    assert before == harness.uninterrupted_invoice_content(engine, PERIOD)
    harness.bump_usage(engine)
    after = harness.uninterrupted_invoice_content(engine, PERIOD)
    assert after != before and after.keys() == before.keys()
    return work, (before, ids), after


INVOICE_KILLS = [
    ("invoices.read", False),  # period locked, catalog and usage read
    ("invoices.tenant_staged@1", False),  # first draft's lines in the COPY
    ("invoices.tenant_staged@17", False),  # half-way through the COPY
    ("invoices.staged", False),
    ("invoices.written", False),  # drafts upserted, lines replaced, not committed
    ("invoices.written", True),
    ("invoices.closed", True),  # drafts closed and numbered, not committed
]


@pytest.mark.parametrize(("point", "close"), INVOICE_KILLS)
def test_invoice_run_killed_then_rerun(
    settings: Settings, engine: Engine, drafted: Any, point: str, close: bool
) -> None:
    work, (before, ids), after = drafted
    args = {"period": PERIOD, "close": close}
    harness.run_killed_at("invoices", settings, work, point, args)
    assert harness.current_invoice_content(engine) == (before, ids)  # untouched
    result = harness.run_ok("invoices", settings, work, args)
    content, new_ids = harness.current_invoice_content(engine)
    assert new_ids == ids  # the same drafts, refreshed in place: one per tenant
    assert content == harness.with_status(after, "closed" if close else "draft")
    assert result["closed"] == (len(ids) if close else 0)
    if close:
        _assert_numbers_unique(engine, len(ids))


@pytest.mark.parametrize("seed", range(2))
def test_invoice_run_killed_at_a_random_time_then_rerun(
    settings: Settings, engine: Engine, drafted: Any, seed: int
) -> None:
    work, (before, ids), after = drafted
    faults = {"TALLYFLOW_FAULT_DELAY_MS": "30", "TALLYFLOW_FAULT_DELAY_AT": "invoices."}
    child = harness.start("invoices", settings, work, {"period": PERIOD}, faults)
    child.wait_for_point("invoices.read")
    time.sleep(random.Random(seed).uniform(0.1, 0.7))
    child.kill()
    assert child.join() == -signal.SIGKILL
    assert child.points()[-1].startswith("invoices.")
    assert harness.current_invoice_content(engine) == (before, ids)
    harness.run_ok("invoices", settings, work, {"period": PERIOD})
    assert harness.current_invoice_content(engine) == (after, ids)


PARALLEL = {"TALLYFLOW_INVOICE_PARALLEL_MIN_TENANTS": "1", "TALLYFLOW_INVOICE_WORKERS": "2"}


def _processes_with(variable: str) -> list[int]:
    """Live processes whose environment holds `variable` (this test's own trace file)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if variable.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
    return found


def test_invoice_run_priced_by_a_worker_killed_then_rerun(
    settings: Settings, engine: Engine, drafted: Any
) -> None:
    """The run's batch priced by a worker process (services.invoicing.workers), the run
    killed half-way through writing it: nothing changed, the orphaned worker exits, and
    the rerun (a worker again) bills what an uninterrupted run bills."""
    work, (before, ids), after = drafted
    faults = {"TALLYFLOW_CRASH_AT": "invoices.tenant_staged@17", **PARALLEL}
    code, child = harness.run("invoices", settings, work, {"period": PERIOD}, faults)
    assert code == -signal.SIGKILL
    points = child.points()
    assert points[-1] == "invoices.tenant_staged"
    assert "invoices.price_batch" in points  # traced by the worker, whose env it inherits
    assert harness.current_invoice_content(engine) == (before, ids)
    trace = f"TALLYFLOW_FAULT_TRACE={child.trace}"
    deadline = time.monotonic() + 30
    while _processes_with(trace) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(trace) == []  # the worker saw its socket close and exited
    code, rerun = harness.run("invoices", settings, work, {"period": PERIOD}, PARALLEL)
    assert code == 0
    assert rerun.result()["pricing_workers"] == 1  # 30 tenants: one batch, one worker
    assert harness.current_invoice_content(engine) == (after, ids)


def _assert_numbers_unique(engine: Engine, n: int) -> None:
    with engine.connect() as conn:
        numbers = conn.execute(
            sa.text("SELECT number FROM invoices WHERE status = 'closed'")
        ).scalars()
        assert len(set(numbers)) == n
