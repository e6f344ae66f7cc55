"""The close_billing_period flow on a real Prefect test server and a real Postgres."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from flows.close_billing_period import close_billing_period, resolve_period
from flows.invoice_reports import render_invoice_run_report
from models.period import BillingPeriod
from services.invoicing import GenerationResult, InvoiceSummary, LateUsage, UnsubscribedUsage
from tallyflow.core.clock import frozen_at
from tallyflow.core.errors import InvalidInput
from tallyflow.core.settings import Settings
from tests.services.test_invoicing import NOV, seed_basic

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_flow_generates_records_and_reports(settings: Settings, engine: Engine) -> None:
    seed_basic(engine)
    outcome = close_billing_period(period="2026-11")
    assert (outcome["generated"], outcome["skipped"], outcome["closed"]) == (3, 0, 0)
    assert outcome["totals_by_currency"] == {"JPY": "1050", "USD": "75.51"}
    assert outcome["unsubscribed_tenants"] == 1
    with engine.connect() as conn:
        run = conn.execute(
            sa.text("SELECT job, status, summary, parameters, duration_ms FROM job_runs")
        ).one()
        run_ids = conn.execute(sa.text("SELECT DISTINCT run_id FROM invoices")).scalars().all()
    assert (run.job, run.status) == ("close_billing_period", "succeeded")
    assert run.summary["generated"] == 3 and run.parameters["period"] == "2026-11"
    assert [str(r) for r in run_ids] == [outcome["run_id"]]

    # rerun with close: the same drafts, now closed and numbered
    closed = close_billing_period(period="2026-11", close=True)
    assert sorted(closed["invoice_ids"]) == sorted(outcome["invoice_ids"])
    assert closed["closed"] == 3
    with engine.connect() as conn:
        statuses = conn.execute(sa.text("SELECT DISTINCT status FROM invoices")).scalars().all()
    assert statuses == ["closed"]


def test_flow_for_some_tenants(settings: Settings, engine: Engine) -> None:
    seed_basic(engine)
    outcome = close_billing_period(period="2026-11", tenant_ids=["beta"], close=True)
    assert (outcome["generated"], outcome["closed"]) == (1, 1)
    assert outcome["unsubscribed_tenants"] == 0  # ghost is not in scope


def test_failed_run_is_recorded(settings: Settings, engine: Engine) -> None:
    seed_basic(engine)
    with engine.begin() as conn:  # a stored pricing that no longer parses
        conn.execute(sa.text('UPDATE plan_quotas SET pricing = \'{"unit_price": "-1"}\''))
    # the domain error itself (a stored plan that no longer prices), not any exception
    with pytest.raises(InvalidInput, match="unit_price") as info:
        close_billing_period(period="2026-11")
    assert isinstance(info.value, InvalidInput)
    with engine.connect() as conn:
        run = conn.execute(sa.text("SELECT status, error FROM job_runs")).one()
        invoices = conn.execute(sa.text("SELECT count(*) FROM invoices")).scalar_one()
    assert run.status == "failed" and "unit_price" in run.error
    assert invoices == 0


def test_cli_generate_json(settings: Settings, engine: Engine) -> None:
    import json

    from tallyflow.cli.app import app

    seed_basic(engine)
    runner = CliRunner()
    result = runner.invoke(app, ["invoices", "generate", "--period", "2026-11", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the whole of stdout is one object
    # the contract's four keys, plus the corrections and the tenants that could not be priced
    assert set(payload) == {
        "generated",
        "skipped",
        "closed",
        "invoice_ids",
        "correction_ids",
        "unpriceable",
    }
    assert (payload["generated"], payload["closed"]) == (3, 0)

    result = runner.invoke(
        app,
        ["invoices", "generate", "--period", "2026-11", "--tenant", "acme", "--close", "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the whole of stdout is one object
    assert (payload["generated"], payload["closed"]) == (1, 1)


@pytest.mark.parametrize("period", ["2026-13", "11-2026", "x"])
def test_cli_bad_period_exits_2(settings: Settings, period: str) -> None:
    from tallyflow.cli.app import app

    result = CliRunner().invoke(app, ["invoices", "generate", "--period", period])
    assert result.exit_code == 2
    assert "YYYY-MM" in result.output


def test_default_period_is_the_previous_month() -> None:
    assert resolve_period(None, dt.date(2027, 1, 1)) == BillingPeriod.parse("2026-12")
    assert resolve_period("2026-11") == NOV


def test_report_lists_what_could_not_be_billed() -> None:
    result = GenerationResult(
        period=NOV,
        generated=2,
        updated=2,
        skipped=1,
        closed=0,
        removed=0,
        invoices=(
            InvoiceSummary(1, "acme", "USD", D("55.01")),
            InvoiceSummary(2, "nihon", "JPY", D("1050")),
        ),
        skipped_tenants={"old": "invoice_closed"},
    )
    late = LateUsage(
        "old",
        7,
        "INV-202610-000001",
        dt.date(2026, 10, 1),
        "api.calls",
        2,
        D(5),
        3,
        dt.datetime(2026, 11, 2, 3, 4, tzinfo=dt.UTC),
    )
    md = render_invoice_run_report(result, [UnsubscribedUsage("ghost", 1, 1, 1)], [late])
    assert "| 2 | 2 | 1 | 0 | 0 |" in md
    assert "| USD | 1 | 55.01 |" in md and "| JPY | 1 | 1050 |" in md
    assert md.index("| nihon |") < md.index("| acme |")  # ranked by amount
    assert "| ghost | 1 | 1 | 1 |" in md
    assert "INV-202610-000001" in md and "| old | invoice_closed |" in md


def test_cli_failed_run_exits_1(settings: Settings, engine: Engine) -> None:
    from tallyflow.cli.app import app

    seed_basic(engine)
    with engine.begin() as conn:
        conn.execute(sa.text('UPDATE plan_quotas SET pricing = \'{"unit_price": "-1"}\''))
    result = CliRunner().invoke(app, ["invoices", "generate", "--period", "2026-11", "--json"])
    # exit 1 by the CLI's own handling (typer.Exit), not an exception escaping the command
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    assert "error: the run failed" in result.stderr and "unit_price" in result.stderr
    assert "Traceback" not in result.stderr


def test_invoice_flows_read_the_one_clock(settings: Settings, engine: Engine) -> None:
    """Without `now`, closing instants come from tallyflow.core.clock (its test seam
    `frozen_at`), never from the wall clock: generate + close, then finalize."""
    from flows.finalize_invoices import finalize_invoices

    seed_basic(engine)
    at = dt.datetime(2026, 12, 1, 0, 30, tzinfo=dt.UTC)
    with frozen_at(at):
        outcome = close_billing_period(period="2026-11", tenant_ids=["beta"], close=True)
        drafts = close_billing_period(period="2026-11")  # the others stay drafts
    assert (outcome["closed"], drafts["generated"], drafts["closed"]) == (1, 2, 0)
    later = dt.datetime(2026, 12, 20, 6, 0, tzinfo=dt.UTC)  # past the grace days
    with frozen_at(later):
        final = finalize_invoices()
    assert final["as_of"] == "2026-12-20" and final["closed"] == 2
    with engine.connect() as conn:
        closed = conn.execute(
            sa.text("SELECT tenant_id, closed_at FROM invoices ORDER BY tenant_id")
        ).all()
        runs = conn.execute(sa.text("SELECT job, status FROM job_runs ORDER BY started_at")).all()
    assert dict(closed) == {"acme": later, "beta": at, "nihon": later}
    assert [tuple(r) for r in runs] == [
        ("close_billing_period", "succeeded"),
        ("close_billing_period", "succeeded"),
        ("finalize_invoices", "succeeded"),
    ]
