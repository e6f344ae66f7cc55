"""An invoice run priced by worker processes (services.invoicing.workers) against the same
run priced in its own process: the same lines in the same order, the same skips, the run's
snapshot and nothing later, and a failing or killed worker failing the run whole."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import threading
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from services.invoicing import (
    SERIAL,
    GenerationResult,
    Parallelism,
    generate_invoices,
    invoice_run_transaction,
)
from services.invoicing import batches as batches_module
from services.invoicing.batches import LineText
from services.invoicing.compute import DraftInvoice, DraftLine
from services.invoicing.workers import WorkerFailed
from services.metrics.catalog import create_metric
from tallyflow.core import faults
from tallyflow.core.copytext import copy_row
from tallyflow.core.settings import Settings
from tests.services.invoicing.test_preview import seed_generated
from tests.services.test_invoicing import add_usage, seed_plan, subscribe

NOV = BillingPeriod.parse("2026-11")
AT = dt.datetime(2026, 12, 4, 4, 0, tzinfo=dt.UTC)
TWO = Parallelism(processes=2, min_tenants=1)
MODELS = ("large", "small", None)

TOKENS = {
    "code": "tokens",
    "name": "Tokens",
    "event_metric": "llm.tokens",
    "aggregation": "sum",
    "value": "quantity",
    "group_by": ["model"],
}
MATRIX = {
    "model": "matrix",
    "prices": [
        {
            "match": {"model": "large"},
            "included": "5",
            "pricing": {
                "model": "graduated",
                "tiers": [
                    {"up_to": "100", "unit_price": "0.02"},
                    {"up_to": None, "unit_price": "0.015"},
                ],
            },
        },
        {"match": {"model": "small"}, "pricing": {"model": "per_unit", "unit_price": "0.001"}},
    ],
    "default": {"pricing": {"model": "per_unit", "unit_price": "2"}},
}


def seed(engine: Engine) -> None:
    """Random plain-metric tenants (plan changes, overrides) and tenants on a matrix quota
    over a grouped billable metric, one of them billed beyond the money bound."""
    seed_generated(engine, 11)
    rng = random.Random(5)
    with engine.begin() as conn:
        create_metric(conn, TOKENS)
        ai = seed_plan(conn, "ai", base_fee="9.99", quotas={"tokens": {"pricing": MATRIX}})
        for n in range(13):
            tenant = f"ai{n:02d}"
            subscribe(conn, tenant, ai, "2026-10-01")
            rows: list[tuple[str, Any, D]] = []
            for model in rng.sample(MODELS, rng.randint(1, 3)):
                key = json.dumps({"model": model})
                rows.append((key, key, D(rng.randint(0, 10**6)) / 100))
            if n == 7:  # 2e19 of money: beyond the 1e18 bound, skipped with its reason
                rows = [('{"model": null}', '{"model": null}', D(10**19))]
            rows.append(("", None, sum((v for _, _, v in rows), D(0))))
            for group_key, group_values, value in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO metric_usage VALUES ('tokens', :t, '2026-11-01',"
                        " '2026-11-01', '2026-12-01', :k, CAST(:g AS jsonb), :v,"
                        " '2026-12-01T00:10:00Z')"
                    ),
                    {"t": tenant, "k": group_key, "g": group_values, "v": value},
                )


def run(engine: Engine, parallel: Parallelism) -> GenerationResult:
    with invoice_run_transaction(engine, [NOV]) as conn:
        return generate_invoices(conn, NOV, now=AT, parallel=parallel)


LINES = sa.text(
    "SELECT l.id, i.tenant_id, i.total, l.line_no, l.kind, l.subscription_id, l.plan_code,"
    " l.metric, l.description, l.window_start, l.window_end, l.quantity, l.included,"
    ' l.billable_quantity, l.pricing_model, l.amount, l.breakdown::text, l."group"::text'
    " FROM invoice_lines AS l JOIN invoices AS i ON i.id = l.invoice_id ORDER BY l.id"
)


def stored_lines(engine: Engine) -> list[tuple[Any, ...]]:
    """Every line in id order, ids left out (each run has its own)."""
    with engine.connect() as conn:
        return [tuple(r)[1:] for r in conn.execute(LINES)]


def line_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT id FROM invoice_lines ORDER BY id")).scalars())


def drop_drafts(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM invoices WHERE status = 'draft'"))


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three tenants a batch: 21 tenants make 7 batches, shared by the two workers."""
    monkeypatch.setattr(batches_module, "COPY_TENANTS", 3)


def test_workers_write_the_lines_of_a_serial_run_in_its_order(
    engine: Engine, small_batches: None
) -> None:
    seed(engine)
    serial = run(engine, SERIAL)
    expected = stored_lines(engine)
    assert serial.workers == 0
    assert serial.skipped_tenants == {"ai07": "amount_out_of_range"}
    assert len(expected) > 40
    assert any(r[-1] == '{"model": "large"}' for r in expected)  # matrix group lines
    drop_drafts(engine)

    parallel = run(engine, TWO)
    assert parallel.workers == 2
    assert stored_lines(engine) == expected
    assert parallel.skipped_tenants == serial.skipped_tenants
    assert parallel.skip_messages == serial.skip_messages
    assert parallel.totals_by_currency() == serial.totals_by_currency()
    assert (parallel.generated, parallel.updated) == (serial.generated, serial.updated) == (20, 20)

    # a rerun (every draft known: lines staged and compared) changes nothing, ids included
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT array_agg(id ORDER BY id) FROM invoice_lines")).scalar()
    again = run(engine, TWO)
    assert (again.workers, again.generated, again.updated) == (2, 20, 0)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT array_agg(id ORDER BY id) FROM invoice_lines")).scalar()
            == ids
        )


def test_a_refresh_by_workers_equals_a_serial_run_of_the_new_usage(
    engine: Engine, small_batches: None
) -> None:
    seed(engine)
    run(engine, TWO)
    with engine.begin() as conn:
        add_usage(conn, "t3", "m1", "2026-11-29", "123456.789", event_count=5)
        conn.execute(
            sa.text("UPDATE metric_usage SET value = value + 1000 WHERE tenant_id = 'ai02'")
        )
    refreshed = run(engine, TWO)
    assert refreshed.workers == 2
    assert refreshed.updated >= 1
    by_tenant = sorted(stored_lines(engine), key=lambda r: (r[0], r[2]))
    drop_drafts(engine)
    run(engine, SERIAL)
    assert sorted(stored_lines(engine), key=lambda r: (r[0], r[2])) == by_tenant


def test_workers_read_the_runs_snapshot_not_what_commits_after_it(
    engine: Engine, small_batches: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Usage committed while the run is paused after its read (the workers not started
    yet) is not billed: the workers import the run's snapshot."""
    seed(engine)
    run(engine, SERIAL)
    expected = stored_lines(engine)
    drop_drafts(engine)
    release = tmp_path / "release"
    monkeypatch.setenv(faults.PAUSE_AT, "invoices.read")
    monkeypatch.setenv(faults.PAUSE_FILE, str(release))
    done: list[GenerationResult] = []
    runner = threading.Thread(target=lambda: done.append(run(engine, TWO)))
    runner.start()
    try:
        with engine.begin() as conn:  # the run holds the usage lock shared: not awaited
            add_usage(conn, "t1", "m0", "2026-11-03", "999999")
            conn.execute(sa.text("UPDATE metric_usage SET value = value * 2"))
    finally:
        release.touch()
        runner.join(timeout=120)
    assert done and done[0].workers == 2
    assert stored_lines(engine) == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (faults.RAISE_AT, "invoices.price_batch=RuntimeError", "RuntimeError: fault injected"),
        (faults.CRASH_AT, "invoices.price_batch@2", r"exited \(exit code -9\)"),
    ],
    ids=["worker-raises", "worker-killed"],
)
def test_a_failing_or_killed_worker_fails_the_run_and_nothing_is_written(
    engine: Engine,
    small_batches: None,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    seed(engine)
    # NOTE: the variable is set only around the run's start: the workers inherit it; this
    # process reaches the point only through them (the run prices nothing itself).
    monkeypatch.setenv(variable, value)
    with pytest.raises(WorkerFailed, match=message):
        run(engine, TWO)
    monkeypatch.delenv(variable)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM invoices")).scalar_one() == 0
    # and the next run bills everyone
    assert run(engine, TWO).generated == 20


def test_small_runs_and_single_snapshot_rules_stay_in_process(engine: Engine) -> None:
    assert Parallelism(processes=2, min_tenants=20_000).workers_for(19_999) == 0
    assert Parallelism(processes=2, min_tenants=20_000).workers_for(20_000) == 2
    assert Parallelism(processes=8, min_tenants=1).workers_for(2_500) == 3  # a batch each
    assert Parallelism(processes=1, min_tenants=1).workers_for(10**6) == 0
    defaults = Parallelism.of(Settings(database_url="postgresql://x/y"))
    assert (defaults.processes, defaults.min_tenants) == (min(os.cpu_count() or 1, 8), 20_000)
    chosen = Parallelism.of(Settings(database_url="postgresql://x/y", invoice_workers=3))
    assert chosen.processes == 3
    seed(engine)
    with engine.begin() as conn:  # READ COMMITTED: each read its own snapshot
        assert generate_invoices(conn, NOV, now=AT, parallel=TWO).workers == 0


def test_a_lines_copy_text_is_the_generic_row_of_its_values() -> None:
    """batches.LineText (the run's fast path) writes what copy_row writes for the same values,
    hostile text included; copy_row is held byte-equal to psycopg in tests/tallyflow."""
    line = DraftLine(
        line_no=3,
        kind="usage",
        subscription_id=None,
        plan_code="p\tro",
        metric="m\\1",
        description="a\nb\r\\c ✓",
        window_start=dt.date(2026, 11, 1),
        window_end=dt.date(2026, 12, 1),
        quantity=D("1E+3"),
        included=D("0.500"),
        billable_quantity=D(0),
        pricing_model=None,
        amount=D("-1.20"),
        breakdown={"note": 'say "hi"\n', "n": "1"},
        group={"model": None, "b": "x\ty\\"},
    )
    plain = line._replace(line_no=4, metric=None, pricing_model="per_unit", group=None)
    text = LineText()
    text.draft(42, DraftInvoice("t", "USD", D(0), (line, plain)))
    text.draft("t2", DraftInvoice("t2", "USD", D(0), (line,)))

    def row(key: object, li: DraftLine) -> str:
        group = li.group and orjson.dumps(li.group, option=orjson.OPT_SORT_KEYS).decode()
        return copy_row((key, *li[:-2], orjson.dumps(li.breakdown).decode(), group))

    assert text.text() == (row(42, line) + row(42, plain) + row("t2", line)).encode()
