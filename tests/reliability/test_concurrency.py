"""Concurrency: runs that overlap end in one consistent state.

Ingest runs are real child processes (tests/reliability/harness.py); quota checks go
through the real API app (snapshot + NOTIFY listener) from several threads; invoice
lifecycle calls run in threads, each in its own transaction.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from models.period import BillingPeriod
from services.api_keys import create_api_key
from services.invoicing import close_invoice, generate_invoices, void_invoice
from services.quota import refresh_quota_usage
from tallyflow.core.clock import frozen_at
from tallyflow.core.errors import Conflict
from tallyflow.core.settings import Settings
from tallyflow.synthetic.generate import UsageSpec, generate_usage, read_oracle, tenant_ids
from tests.reliability import harness
from tests.reliability.harness import Expected, assert_consistent

# NOTE: every case runs real flow runs in child processes (10-20 s each on the shared
# 2-core machine since the children call the real Prefect flows): slow for developers.
pytestmark = pytest.mark.slow

# --- two ingests on overlapping files -------------------------------------------------------


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Expected]:
    """Files with duplicates and every kind of bad row, but no conflicting duplicates: which
    run reads a file first must not matter to the oracle (with conflicts it would decide
    which version stands)."""
    root = tmp_path_factory.mktemp("overlap").resolve()
    summary = generate_usage(
        root / "landing",
        UsageSpec(month="2026-10", tenants=6, events=3000, seed=31, duplicates=0.03, bad=0.05),
        format="jsonl",
        files_by="rows",
        rows_per_file=300,
        oracle_path=root / "oracle.parquet",
    )
    expected = Expected()
    expected.add_oracle(read_oracle(root / "oracle.parquet"))
    expected.add_generated(summary)
    return summary, expected


@pytest.mark.parametrize("runs", [2, 3])
def test_ingests_started_together_on_overlapping_files(
    settings: Settings, engine: Engine, tmp_path: Path, overlapping: Any, runs: int
) -> None:
    summary, expected = overlapping
    files = list(summary.files)
    assert len(files) >= 10
    # the same content under another name as well: ingested once (by sha256)
    copy = tmp_path / "copy-of-first.jsonl"
    shutil.copyfile(files[0], copy)
    half = len(files) // 2
    sets = [files[: half + 3], [*files[half - 3 :], str(copy)], files[::2]][:runs]
    work = tmp_path / "work"
    children = [harness.start("ingest", settings, work, {"paths": s}) for s in sets]
    assert [c.join() for c in children] == [0] * runs
    results = [c.result() for c in children]
    assert sum(r["files"] for r in results) == len(files)  # each file read by one run only
    assert sum(r["accepted"] for r in results) == expected.accepted
    assert sum(r["duplicates"] for r in results) == expected.duplicates
    assert_consistent(engine, settings.lake_path, expected)
    # the runs took turns (the usage lock): no two were inside their commit at once
    with engine.connect() as conn:
        spans = conn.execute(
            sa.text("SELECT started_at, finished_at, status FROM job_runs ORDER BY started_at")
        ).all()
    assert [s.status for s in spans] == ["succeeded"] * runs
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(spans))


# --- quota checks served while ingests commit -----------------------------------------------


def _quota_setup(engine: Engine) -> str:
    from tests.services.test_invoicing import seed_plan, subscribe

    with engine.begin() as conn:
        plan = seed_plan(
            conn,
            "metered",
            quotas={"api.calls": {"pricing": {"model": "per_unit", "unit_price": "0.001"}}},
        )
        for tenant in tenant_ids(4):
            subscribe(conn, tenant, plan, "2026-01-01")
        # what the catalog service does on a subscription change (seeded here by SQL)
        refresh_quota_usage(conn, today=QUOTA_NOW.date(), as_of=None)
        key = create_api_key(conn, name="checker", scopes=["billing.read"], tenant_id=None).key
    return key


# NOTE: the quota checks measure "this month": one fixed clock for the generator, the
# ingest children and the API (not the wall clock, which may be in a month's first hour).
QUOTA_NOW = dt.datetime(2026, 10, 20, 12, 0, tzinfo=dt.UTC)


def test_quota_checks_during_ingests_are_never_staler_than_one_run(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    now = QUOTA_NOW
    month = f"{now:%Y-%m}"
    batches = []
    for seed in range(4):
        out = tmp_path / f"batch{seed}"
        generate_usage(
            out,
            UsageSpec(month=month, tenants=4, events=800, seed=40 + seed, now=now),
            oracle_path=tmp_path / f"oracle{seed}.parquet",
            files_by="rows",
            rows_per_file=400,
        )
        batches.append((out, read_oracle(tmp_path / f"oracle{seed}.parquet")))
    tenants = tenant_ids(4)
    # used (month to date, api.calls) per tenant after 0, 1, ... runs
    levels: list[dict[str, Decimal]] = [dict.fromkeys(tenants, Decimal(0))]
    for _, oracle in batches:
        level = dict(levels[-1])
        for r in oracle.filter(oracle["metric"] == "api.calls").iter_rows(named=True):
            level[r["tenant_id"]] += Decimal(r["quantity_sum"])
        levels.append(level)
    assert all(levels[i] != levels[i + 1] for i in range(len(batches)))

    key = _quota_setup(engine)
    committed = [0.0] * (len(batches) + 1)  # monotonic time each run was known committed
    observations: list[tuple[float, str, int, Decimal]] = []
    errors: list[str] = []
    stop = threading.Event()

    with frozen_at(now), TestClient(create_app(settings)) as client:

        def checker(n: int) -> None:
            headers = {"Authorization": f"Bearer {key}"}
            i = 0
            while not stop.is_set():
                tenant = tenants[(n + i) % len(tenants)]
                i += 1
                done = sum(1 for t in committed[1:] if t and t < time.monotonic())
                started = time.monotonic()
                r = client.post(
                    f"/api/billing/tenants/{tenant}/quotas:check",
                    json={"metric": "api.calls", "quantity": "1"},
                    headers=headers,
                )
                if r.status_code != 200 or not r.json()["allowed"]:
                    errors.append(f"{r.status_code} {r.text}")
                    continue
                observations.append((started, tenant, done, Decimal(r.json()["used"])))

        threads = [threading.Thread(target=checker, args=(n,), daemon=True) for n in range(4)]
        for t in threads:
            t.start()
        for k, (out, _) in enumerate(batches, start=1):
            time.sleep(0.3)
            assert harness.run_ok(
                "ingest", settings, tmp_path / "work", {"paths": [str(out)], "now": now.isoformat()}
            )
            committed[k] = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        final = {
            t: Decimal(
                client.post(
                    f"/api/billing/tenants/{t}/quotas:check",
                    json={"metric": "api.calls"},
                    headers={"Authorization": f"Bearer {key}"},
                ).json()["used"]
            )
            for t in tenants
        }

    assert not errors, errors[:5]
    assert len(observations) > 50
    assert final == levels[-1]  # caught up with the last run
    stale = []
    for _, tenant, done, used in observations:
        allowed = {levels[k][tenant] for k in range(max(done - 1, 0), len(levels))}
        if used not in allowed:
            stale.append((tenant, done, used))
    assert not stale, stale[:5]
    seen = Counter(
        next(k for k, lv in enumerate(levels) if lv[t] == u) for _, t, _, u in observations
    )
    assert len(seen) >= 3  # the checks did see the runs land


# --- invoice runs and the invoice lifecycle ------------------------------------------------

PERIOD = harness.INVOICE_PERIOD


def test_two_invoice_runs_at_once(settings: Settings, engine: Engine, tmp_path: Path) -> None:
    harness.seed_billing(engine)
    expected = harness.uninterrupted_invoice_content(engine, PERIOD)
    work = tmp_path / "work"
    children = [harness.start("invoices", settings, work, {"period": PERIOD}) for _ in range(2)]
    assert [c.join() for c in children] == [0, 0]
    content, ids = harness.current_invoice_content(engine)
    assert content == expected and len(ids) == len(harness.INVOICE_TENANTS)
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM invoices")).scalar_one()
    assert total == len(ids)  # no second set, not even void ones
    # both at once again, now closing: each invoice closed once, numbered once
    children = [
        harness.start("invoices", settings, work, {"period": PERIOD, "close": True})
        for _ in range(2)
    ]
    assert [c.join() for c in children] == [0, 0]
    assert sorted(c.result()["closed"] for c in children) == [0, len(ids)]
    closed, closed_ids = harness.current_invoice_content(engine)
    assert closed_ids == ids and closed == harness.with_status(expected, "closed")


def test_close_and_void_the_same_invoice_at_once(engine: Engine) -> None:
    harness.seed_billing(engine)
    with engine.begin() as conn:
        result = generate_invoices(conn, BillingPeriod.parse(PERIOD))
    outcomes: Counter[tuple[str, str]] = Counter()
    for invoice_id in result.invoice_ids:
        barrier = threading.Barrier(2)
        got: dict[str, str] = {}

        def act(
            name: str,
            action: Any,
            invoice_id: int = invoice_id,
            barrier: threading.Barrier = barrier,
            got: dict[str, str] = got,
        ) -> None:
            barrier.wait()
            try:
                with engine.begin() as conn:
                    action(conn, invoice_id)
                got[name] = "ok"
            except Conflict as exc:
                got[name] = exc.code

        threads = [
            threading.Thread(target=act, args=("close", close_invoice)),
            threading.Thread(target=act, args=("void", void_invoice)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT status, number, closed_at, voided_at FROM invoices WHERE id = :i"),
                {"i": invoice_id},
            ).one()
        outcome = (got["close"], got["void"])
        outcomes[outcome] += 1
        assert row.status == "void" and row.voided_at is not None
        if outcome == ("ok", "ok"):  # closed first, then voided: keeps its number
            assert row.number is not None and row.closed_at is not None
        else:  # voided first: the close is a 409 and the invoice never got a number
            assert outcome == ("invoice_not_draft", "ok"), outcome
            assert row.number is None and row.closed_at is None
    assert sum(outcomes.values()) == len(result.invoice_ids)
    # after the voids, the next run creates fresh drafts (the correction path), one each
    with engine.begin() as conn:
        again = generate_invoices(conn, BillingPeriod.parse(PERIOD))
    assert len(set(again.invoice_ids)) == len(result.invoice_ids)
    assert not set(again.invoice_ids) & set(result.invoice_ids)


def test_close_and_void_at_once_over_http(settings: Settings, engine: Engine) -> None:
    harness.seed_billing(engine)
    with engine.begin() as conn:
        ids = generate_invoices(conn, BillingPeriod.parse(PERIOD)).invoice_ids[:8]
        key = create_api_key(conn, name="ops", scopes=["billing.read", "billing.write"]).key
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings)) as client:
        for invoice_id in ids:
            barrier = threading.Barrier(2)
            codes: dict[str, int] = {}

            def post(
                action: str,
                invoice_id: int = invoice_id,
                barrier: threading.Barrier = barrier,
                codes: dict[str, int] = codes,
            ) -> None:
                barrier.wait()
                r = client.post(f"/api/billing/invoices/{invoice_id}:{action}", headers=headers)
                codes[action] = r.status_code

            threads = [threading.Thread(target=post, args=(a,)) for a in ("close", "void")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert (codes["void"], codes["close"]) in {(200, 200), (200, 409)}, codes
            final = client.get(f"/api/billing/invoices/{invoice_id}", headers=headers).json()
            assert final["status"] == "void"
            assert (final["number"] is not None) == (codes["close"] == 200)


# --- pushed events arriving while ingests drain the inbox -----------------------------------


PUSHED_AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # after every pushed occurred_at


def test_pushes_during_ingests_are_counted_once(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """Two threads push batches (each in its own transaction, so inbox ids commit out of
    order) while ingest runs drain the inbox; every accepted event ends in usage_daily once."""
    from services.ingest.inbox import push_events

    expected = Expected()
    lock = threading.Lock()
    accepted: list[dict[str, Any]] = []
    failures: list[str] = []
    enough = threading.Event()  # set once two ingest runs have committed

    def pusher(n: int) -> None:
        try:
            for b in range(400):
                if b >= 20 and enough.is_set():
                    break
                batch = [
                    {
                        "event_id": f"p{n}-{b}-{i}",
                        "tenant_id": f"tenant-{i % 3}",
                        "metric": "api.calls",
                        "quantity": f"{b}.{i:03d}",
                        "occurred_at": f"2026-10-{1 + (b + i) % 28:02d}T{i % 24:02d}:00:00Z",
                    }
                    for i in range(25)
                ]
                resend = batch[:3] if b % 4 == 3 else []  # a client retry: exact duplicates
                with engine.begin() as conn:
                    outcome = push_events(conn, batch, now=PUSHED_AT)
                with engine.begin() as conn:
                    again = push_events(conn, resend, now=PUSHED_AT)
                if outcome.rejected or again.rejected or again.duplicates != len(resend):
                    failures.append(f"{outcome} {again}")
                with lock:
                    accepted.extend(batch)
                time.sleep(0.01)
        except Exception as exc:  # reported below
            failures.append(repr(exc))

    threads = [threading.Thread(target=pusher, args=(n,), daemon=True) for n in range(2)]
    for t in threads:
        t.start()
    work = tmp_path / "work"
    runs = 0
    while any(t.is_alive() for t in threads):
        harness.run_ok("ingest", settings, work, {})
        runs += 1
        if runs >= 2:
            enough.set()
    for t in threads:
        t.join()
    harness.run_ok("ingest", settings, work, {})  # whatever arrived during the last run
    assert not failures, failures[:3]
    assert runs >= 2
    for e in accepted:
        at = dt.datetime.fromisoformat(e["occurred_at"])
        q = Decimal(e["quantity"])
        expected.add_day((e["tenant_id"], e["metric"], at.date()), q, 1, q, at, at)
    assert len({e["event_id"] for e in accepted}) == len(accepted) >= 2 * 20 * 25
    assert_consistent(engine, settings.lake_path, expected, pushed=len(accepted))
    with engine.connect() as conn:
        drained = conn.execute(
            sa.text("SELECT sum((summary->>'accepted')::int) FROM job_runs")
        ).scalar_one()
    assert drained == len(accepted)
