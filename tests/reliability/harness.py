"""Crash and concurrency harness: pipeline runs in real child processes, killed with SIGKILL.

Why a fork server: importing the pipeline (Prefect, Polars, DuckDB, SQLAlchemy) costs 5 s of
CPU (15 s wall on the shared test machine), and the suite starts 120-odd children. They
are forked from a server that imported it once (`multiprocessing` "forkserver" with a
preload), so each child is a separate process with its own Postgres connections, started
in a fraction of a second, and a SIGKILL stops it exactly as an OOM kill or power loss
would. NOTE: the fork server keeps the Python code it imported at its start, while sql/
files are read at run time: editing the pipeline during a test session gives children
mismatched code (e.g. every file "unreadable"); rerun the session.

What a child runs is the real Prefect flow (`flows.ingest_usage.ingest_usage`,
`flows.close_billing_period.close_billing_period`, `flows.backfill_usage.backfill_usage`),
called as a user's process would: the flow engine, its tasks and a flow run recorded on the
session's Prefect test server (PREFECT_API_URL handed to the child by
tests/reliability/conftest.py), so a kill lands inside a real flow run. An optional `now`
fixes the child's clock (tallyflow.core.clock.frozen_at), as the tests fix their own.

Faults are set through the child's environment (tallyflow/faults.py): TALLYFLOW_CRASH_AT
kills at a named point; TALLYFLOW_FAULT_DELAY_MS slows the named points down so that a kill
sent by the parent after a random sleep lands inside the lake write or the Postgres load;
TALLYFLOW_FAULT_TRACE records the points reached, so a test knows where the kill landed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.ingest.lake import events_root as lake_events
from tallyflow.core import storage
from tallyflow.core.settings import Settings

# NOTE: modules the fork server imports once; every child starts with them loaded.
PRELOAD = [
    "flows.ingest_usage",
    "flows.backfill_usage",
    "flows.close_billing_period",
    "services.invoicing",
    "tasks.generate_period_invoices",
    # the flow engine and its API client (imported on a flow's first call otherwise)
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.client.orchestration",
    "tests.reliability.harness",
    # imported lazily on first use otherwise (1.3 s in every child)
    "pandera.backends.polars.container",
    "pandera.backends.polars.components",
    "pandera.backends.polars.checks",
    "pandera.backends.polars.builtin_checks",
    "sqlalchemy.dialects.postgresql.psycopg",
    "services.quota",
]
CHILD_TIMEOUT_S = 300.0

_context: ForkServerContext | None = None


def context() -> ForkServerContext:
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        assert isinstance(ctx, ForkServerContext)
        ctx.set_forkserver_preload(PRELOAD)
        _context = ctx
    return _context


# ---------------------------------------------------------------------------------------
# In the child
# ---------------------------------------------------------------------------------------


def _child_ingest(args: Mapping[str, Any]) -> dict[str, Any]:
    from flows.ingest_usage import ingest_usage

    paths = args.get("paths")
    result: dict[str, Any] = ingest_usage(
        paths=[str(p) for p in paths] if paths is not None else None,
        drain_inbox=args.get("drain_inbox", True),
    )
    return result


def _child_invoices(args: Mapping[str, Any]) -> dict[str, Any]:
    from flows.close_billing_period import close_billing_period

    result: dict[str, Any] = close_billing_period(
        period=args["period"],
        tenant_ids=args.get("tenant_ids"),
        close=bool(args.get("close", False)),
    )
    return result


def _child_backfill(args: Mapping[str, Any]) -> dict[str, Any]:
    from flows.backfill_usage import backfill_usage

    result: dict[str, Any] = backfill_usage(
        start=date.fromisoformat(args["start"]), end=date.fromisoformat(args["end"])
    )
    return result


_JOBS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "backfill": _child_backfill,
    "ingest": _child_ingest,
    "invoices": _child_invoices,
}


def _child_main(job: str, env: dict[str, str], args: dict[str, Any], result_path: str) -> None:
    import prefect.context

    from tallyflow.core.clock import frozen_at

    for key in [k for k in os.environ if k.startswith("TALLYFLOW_")]:
        del os.environ[key]
    os.environ.update(env)
    # NOTE: Prefect snapshotted the environment when the fork server imported it; refresh
    # it so that this child's flow runs report to PREFECT_API_URL.
    prefect.context.refresh_global_settings_context()
    logging.basicConfig(level=logging.WARNING)
    now = args.get("now")
    clock = frozen_at(datetime.fromisoformat(now)) if now else contextlib.nullcontext()
    with clock:
        result = _JOBS[job](args)
    Path(result_path).write_text(json.dumps(result, default=str))


# ---------------------------------------------------------------------------------------
# In the test
# ---------------------------------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "TALLYFLOW_HOME": str(settings.home_path),
        "TALLYFLOW_DATABASE_URL": str(settings.database_url),
        "TALLYFLOW_LANDING": settings.landing_location.url,
        "TALLYFLOW_LAKE": settings.lake_location.url,
    } | {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


@dataclass
class Child:
    """One pipeline run in a child process."""

    job: str
    process: multiprocessing.process.BaseProcess
    trace: Path
    result_path: Path

    def points(self) -> list[str]:
        """The crash points reached so far, in order."""
        return [line.split()[0] for line in self.lines()]

    def lines(self) -> list[str]:
        return self.trace.read_text().splitlines() if self.trace.exists() else []

    def wait_for_point(self, name: str, timeout: float = CHILD_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while name not in self.points():
            if not self.process.is_alive():
                raise AssertionError(f"{self.job} ended before {name}: {self.points()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.job} never reached {name}: {self.points()}")
            time.sleep(0.002)

    def kill(self) -> None:
        assert self.process.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)

    def join(self, timeout: float = CHILD_TIMEOUT_S) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            self.process.join()
            raise TimeoutError(f"{self.job} did not finish in {timeout} s: {self.points()}")
        return int(self.process.exitcode)

    def result(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.result_path.read_text())
        return value


# NOTE: set by tests/reliability/conftest.py (the session harness's URL) before any child
# starts; a child without it would start a throwaway Prefect server of its own.
PREFECT_API_URL: str | None = None


def start(
    job: str,
    settings: Settings,
    work: Path,
    args: dict[str, Any] | None = None,
    faults: Mapping[str, str] | None = None,
) -> Child:
    """Start `job` ("ingest", "invoices" or "backfill") in a child forked from the preloaded
    server. `args` may hold `now` (ISO 8601, aware): the child's frozen clock."""
    if PREFECT_API_URL is None:
        raise RuntimeError("harness.PREFECT_API_URL is not set (tests/reliability/conftest.py)")
    tag = uuid.uuid4().hex[:8]
    work.mkdir(parents=True, exist_ok=True)
    trace = work / f"{job}-{tag}.trace"
    result_path = work / f"{job}-{tag}.json"
    env = settings_env(settings) | {"TALLYFLOW_FAULT_TRACE": str(trace)} | dict(faults or {})
    env["PREFECT_API_URL"] = PREFECT_API_URL
    process = context().Process(
        target=_child_main, args=(job, env, args or {}, str(result_path)), daemon=True
    )
    process.start()
    return Child(job, process, trace, result_path)


def run(
    job: str,
    settings: Settings,
    work: Path,
    args: dict[str, Any] | None = None,
    faults: Mapping[str, str] | None = None,
) -> tuple[int, Child]:
    child = start(job, settings, work, args, faults)
    return child.join(), child


def run_ok(
    job: str, settings: Settings, work: Path, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    code, child = run(job, settings, work, args)
    assert code == 0, f"{job} failed with exit code {code} after {child.points()}"
    return child.result()


def run_killed_at(
    job: str, settings: Settings, work: Path, point: str, args: dict[str, Any] | None = None
) -> Child:
    """Run `job` with a SIGKILL at crash point `point` (`name` or `name@n`)."""
    code, child = run(job, settings, work, args, {"TALLYFLOW_CRASH_AT": point})
    assert code == -signal.SIGKILL, f"expected a kill at {point}, got {code}: {child.points()}"
    assert child.points()[-1] == point.partition("@")[0], child.points()
    return child


# ---------------------------------------------------------------------------------------
# Oracles and checks
# ---------------------------------------------------------------------------------------

Key = tuple[str, str, date]


@dataclass
class Expected:
    """usage_daily rows and ledger totals the runs must end with, from the generator."""

    daily: dict[Key, tuple[Decimal, int, Decimal, datetime, datetime]] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def add_oracle(self, oracle: pl.DataFrame) -> None:
        for r in oracle.iter_rows(named=True):
            self.add_day(
                (r["tenant_id"], r["metric"], r["usage_date"]),
                Decimal(r["quantity_sum"]),
                r["event_count"],
                Decimal(r["quantity_max"]),
                r["first_occurred_at"],
                r["last_occurred_at"],
            )

    def add_day(
        self, key: Key, total: Decimal, count: int, top: Decimal, first: datetime, last: datetime
    ) -> None:
        old = self.daily.get(key)
        if old is not None:
            total, count = total + old[0], count + old[1]
            top, first, last = max(top, old[2]), min(first, old[3]), max(last, old[4])
        self.daily[key] = (total, count, top, first, last)

    def add_generated(self, summary: Any) -> None:
        self.files |= set(summary.files)
        self.rows += summary.rows
        self.accepted += summary.accepted
        self.duplicates += summary.duplicates
        for reason, n in summary.rejected_by_reason.items():
            self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + n

    def day_totals(self) -> dict[date, tuple[Decimal, int]]:
        totals: dict[date, tuple[Decimal, int]] = {}
        for (_, _, day), (q, n, *_rest) in self.daily.items():
            t = totals.get(day, (Decimal(0), 0))
            totals[day] = (t[0] + q, t[1] + n)
        return totals


def usage_daily(engine: Engine) -> dict[Key, tuple[Decimal, int, Decimal, datetime, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT tenant_id, metric, usage_date, quantity_sum, event_count, quantity_max,"
                " first_occurred_at, last_occurred_at FROM usage_daily"
            )
        ).all()
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5], r[6], r[7]) for r in rows}


def day_totals(conn: sa.Connection) -> dict[date, tuple[Decimal, int]]:
    rows = conn.execute(
        sa.text(
            "SELECT usage_date, sum(quantity_sum), sum(event_count)::bigint"
            " FROM usage_daily GROUP BY usage_date"
        )
    ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def assert_consistent(
    engine: Engine, lake: str | Path, expected: Expected, pushed: int = 0, waiting: int = 0
) -> None:
    """The end state after every run finished: exact, nothing twice, nothing lost.

    `pushed` events were drained from the inbox into the lake; `waiting` are still queued."""
    # usage_daily equals the oracle exactly (Decimal sums, counts, max, first/last)
    actual = usage_daily(engine)
    missing = expected.daily.keys() - actual.keys()
    extra = actual.keys() - expected.daily.keys()
    wrong = {k: (actual[k], v) for k, v in expected.daily.items() if k in actual and actual[k] != v}
    assert not missing and not extra and not wrong, (
        f"{len(missing)} missing, {len(extra)} extra, {len(wrong)} wrong: "
        f"{list(missing)[:3]} {list(extra)[:3]} {list(wrong.items())[:3]}"
    )
    with engine.connect() as conn:
        manifest = conn.execute(sa.text("SELECT path, row_count FROM lake_files")).all()
        ledger = conn.execute(
            sa.text(
                "SELECT path, sha256, rows_read,"
                " rows_accepted, rows_duplicate, rows_rejected FROM ingest_files"
            )
        ).all()
        reasons = dict(
            conn.execute(
                sa.text("SELECT reason, count(*) FROM rejected_rows GROUP BY reason")
            ).all()
        )
        undrained = conn.execute(
            sa.text("SELECT count(*) FROM ingest_inbox WHERE drained_run_id IS NULL")
        ).scalar_one()
        running = conn.execute(
            sa.text("SELECT count(*) FROM job_runs WHERE status = 'running'")
        ).scalar_one()
    # the lake: exactly the manifest's files on disk, every accepted event once
    root = os.fspath(lake)  # a local folder or an s3:// lake
    on_disk = {storage.relative(e.url, root) for e in storage.list_files(lake_events(root))}
    assert on_disk == {m.path for m in manifest}, "orphan or missing lake files"
    events = pl.concat(
        [
            pl.read_parquet(io.BytesIO(storage.read_bytes(storage.join(root, m.path))))
            for m in manifest
        ]
    )
    assert events.height == sum(m.row_count for m in manifest) == expected.accepted + pushed
    assert events.select("tenant_id", "event_id").n_unique() == events.height, "event twice"
    with engine.connect() as conn:
        indexed = conn.execute(sa.text("SELECT count(*) FROM event_keys")).scalar_one()
    assert indexed == events.height, "the key index and the lake differ"
    # the file ledger: every landing file's content exactly once (under its name or the
    # name of a copy with the same content), with the generator's row counts
    assert sorted(r.sha256 for r in ledger) == sorted(_sha256(f) for f in expected.files)
    assert all(_sha256(r.path) == r.sha256 for r in ledger)
    assert sum(r.rows_read for r in ledger) == expected.rows
    assert sum(r.rows_accepted for r in ledger) == expected.accepted
    assert sum(r.rows_duplicate for r in ledger) == expected.duplicates
    # no rejected row lost, none twice
    assert reasons == expected.rejected_by_reason
    assert undrained == waiting
    assert running == 0, "a killed run is still marked running"


def _sha256(path: str) -> str:
    return hashlib.sha256(storage.read_bytes(path)).hexdigest()  # local path or s3:// URL


class DayReader(threading.Thread):
    """Polls per-day totals while runs commit; every day total must be its old or new value.

    Each observed day total must be the day's total before the run or after it (never a
    half-replaced day); with `whole_snapshot`, so must the whole snapshot (an ingest commits
    in one transaction; a backfill commits day by day)."""

    def __init__(
        self,
        engine: Engine,
        old: dict[date, tuple[Decimal, int]],
        new: dict[date, tuple[Decimal, int]],
        *,
        whole_snapshot: bool = True,
    ) -> None:
        super().__init__(daemon=True)
        self.engine, self.old, self.new = engine, old, new
        self.whole_snapshot = whole_snapshot
        self.stop = threading.Event()
        self.observations = 0
        self.seen_old = self.seen_new = 0
        self.bad: list[str] = []

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                snapshot = day_totals(conn)
                conn.rollback()
                self.observations += 1
                for day in self.old.keys() | self.new.keys() | snapshot.keys():
                    value = snapshot.get(day)
                    old, new = self.old.get(day), self.new.get(day)
                    if value not in (old, new):
                        self.bad.append(f"{day}: saw {value}, old {old}, new {new}")
                if snapshot == self.old:
                    self.seen_old += 1
                elif snapshot == self.new:
                    self.seen_new += 1
                elif self.whole_snapshot:
                    self.bad.append("a snapshot mixing old and new days")
                time.sleep(0.01)

    def __enter__(self) -> DayReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()

    def check(self) -> None:
        assert self.observations > 0
        assert not self.bad, self.bad[:5]


# ---------------------------------------------------------------------------------------
# Invoices
# ---------------------------------------------------------------------------------------

INVOICE_PERIOD = "2026-10"
INVOICE_TENANTS = [f"t{i:02d}" for i in range(30)]


def seed_billing(engine: Engine) -> None:
    """Four plans (per-unit, graduated, volume, package; USD, EUR, JPY), 30 tenants, some
    changing plan mid-period, and a month of usage_daily rows for each."""
    from tests.services.test_invoicing import add_usage, seed_plan, subscribe

    graduated = {
        "model": "graduated",
        "tiers": [
            {"up_to": "1000", "unit_price": "0.01", "flat_fee": "1"},
            {"up_to": None, "unit_price": "0.004"},
        ],
    }
    volume = {
        "model": "volume",
        "tiers": [
            {"up_to": "5000", "unit_price": "0.003", "flat_fee": "0"},
            {"up_to": None, "unit_price": "0.0015", "flat_fee": "2.5"},
        ],
    }
    with engine.begin() as conn:
        plans = [
            seed_plan(
                conn,
                "std",
                base_fee="20.00",
                quotas={
                    "api.calls": {"pricing": {"model": "per_unit", "unit_price": "0.002"}},
                    "storage.gb": {"pricing": graduated, "aggregation": "max"},
                },
            ),
            seed_plan(
                conn,
                "vol",
                base_fee="99.99",
                quotas={"api.calls": {"pricing": volume, "included": "1000"}},
            ),
            seed_plan(
                conn,
                "pkg",
                currency="EUR",
                base_fee="5",
                quotas={
                    "compute.seconds": {
                        "pricing": {
                            "model": "package",
                            "package_size": "1000",
                            "package_price": "1.75",
                        }
                    },
                    "api.calls": {"pricing": graduated, "aggregation": "count"},
                },
            ),
            seed_plan(
                conn,
                "jp",
                currency="JPY",
                base_fee="1000",
                quotas={"api.calls": {"pricing": {"model": "per_unit", "unit_price": "0.15"}}},
            ),
        ]
        for i, tenant in enumerate(INVOICE_TENANTS):
            plan = plans[i % 4]
            if i % 7 == 3 and i % 4 < 2:  # a plan change on the 15th (USD to USD)
                subscribe(conn, tenant, plan, "2026-09-01", "2026-10-15")
                subscribe(conn, tenant, plans[1 - i % 4], "2026-10-15")
            else:
                subscribe(conn, tenant, plan, "2026-09-01" if i % 5 else "2026-10-09")
            for day in range(1, 32, 2):
                q = f"{(i + 1) * day * 37 % 4999}.{day:02d}5"
                for metric in ("api.calls", "storage.gb", "compute.seconds"):
                    add_usage(conn, tenant, metric, f"2026-10-{day:02d}", q, event_count=day)


def bump_usage(engine: Engine) -> None:
    """Late usage arrives for every tenant: drafts must change on the next run."""
    from tests.services.test_invoicing import add_usage

    with engine.begin() as conn:
        for i, tenant in enumerate(INVOICE_TENANTS):
            add_usage(conn, tenant, "api.calls", "2026-10-30", f"{1000 + i * 7919}.5")


InvoiceContent = dict[str, tuple[Any, ...]]

_INVOICE_CONTENT = """
SELECT i.id, i.tenant_id, i.status, i.currency, i.total, i.period_start, i.period_end,
       l.line_no, l.kind, l.subscription_id, l.plan_code, l.metric, l.description,
       l.window_start, l.window_end, l.quantity, l.included, l.billable_quantity,
       l.pricing_model, l.amount, l.breakdown::text
FROM invoices i LEFT JOIN invoice_lines l ON l.invoice_id = i.id
WHERE i.status <> 'void'
ORDER BY i.tenant_id, l.line_no
"""


def invoice_content(conn: sa.Connection) -> tuple[InvoiceContent, dict[str, int]]:
    """Every live invoice by tenant (head and lines, without ids and times), and the ids."""
    content: dict[str, list[Any]] = {}
    ids: dict[str, int] = {}
    for r in conn.execute(sa.text(_INVOICE_CONTENT)):
        head = (r.status, r.currency, r.total, r.period_start, r.period_end)
        entry = content.setdefault(r.tenant_id, [head])
        assert ids.setdefault(r.tenant_id, r.id) == r.id, f"two live invoices for {r.tenant_id}"
        assert entry[0] == head
        entry.append(tuple(r)[7:])
    return {t: tuple(v) for t, v in content.items()}, ids


def uninterrupted_invoice_content(engine: Engine, period: str) -> InvoiceContent:
    """What a run that is not interrupted writes, read inside its transaction, rolled back."""
    from models.period import BillingPeriod
    from services.invoicing import generate_invoices

    with engine.connect() as conn:
        tx = conn.begin()
        generate_invoices(conn, BillingPeriod.parse(period))
        content, _ = invoice_content(conn)
        tx.rollback()
    return content


def current_invoice_content(engine: Engine) -> tuple[InvoiceContent, dict[str, int]]:
    with engine.connect() as conn:
        return invoice_content(conn)


def with_status(content: InvoiceContent, status: str) -> InvoiceContent:
    return {t: ((status, *v[0][1:]), *v[1:]) for t, v in content.items()}
