"""The demo command's logic runs end to end on a small size (real flows, real Postgres)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from tallyflow.cli.app import app
from tallyflow.core.clock import frozen_at
from tallyflow.core.resources import Resources
from tallyflow.core.settings import Settings
from tallyflow.synthetic.demo import format_report, run_demo


@pytest.mark.usefixtures("prefect_harness")
def test_demo_small_and_rerunnable(settings: Settings, engine: Engine) -> None:
    res = Resources(settings, engine)
    # NOTE: the demo bills "last month" and checks quotas on "this month so far": a fixed
    # clock (mid-month) instead of the wall clock's day, the 1st included.
    now = dt.datetime(2026, 11, 18, 9, 30, tzinfo=dt.UTC)
    today = now.date()
    # the command itself, on a small size (what the README's demo runs, smaller)
    with frozen_at(now):
        shown = CliRunner().invoke(app, ["demo", "--tenants", "12", "--events", "2000"])
    assert shown.exit_code == 0, shown.output
    assert "Invoices: 9 generated, 9 closed" in shown.stdout
    assert "Quota checks" in shown.stdout and "Where to look next" in shown.stdout
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(
                sa.text("SELECT reason, count(*) FROM rejected_rows GROUP BY reason")
            ).all()
        )
        assert kinds["conflicting_duplicate"] > 0 and len(kinds) == 12

    (pdf,) = settings.home_path.glob("INV-*.pdf")  # the demo writes one PDF
    assert pdf.read_bytes().startswith(b"%PDF-")
    with engine.connect() as conn:
        invoices = conn.execute(
            sa.text("SELECT tenant_id, number, total FROM invoices ORDER BY tenant_id")
        ).all()
    with frozen_at(now):
        second = run_demo(res, tenants=12, events=2000, today=today, progress=lambda _: None)
    assert "nothing new" in format_report(second, settings.home_path, None)
    assert second.accepted == 0 and second.rows == 0  # same files: skipped by sha256
    # closed invoices are re-rated; nothing differs: no correction, nothing closed
    assert second.invoices["generated"] == 0 and second.invoices["skipped"] == 0
    assert second.invoices["corrections"] == [] and second.invoices["closed"] == 0
    assert second.document is None  # finalize closed nothing new: no new PDF
    with engine.connect() as conn:
        again = conn.execute(
            sa.text("SELECT tenant_id, number, total FROM invoices ORDER BY tenant_id")
        ).all()
    assert again == invoices  # closed invoices never change
