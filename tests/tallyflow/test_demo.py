"""The demo command's logic runs end to end on a small size (real flows, real Postgres)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tallyflow.demo import format_report, run_demo
from tallyflow.resources import Resources
from tallyflow.settings import Settings


@pytest.mark.usefixtures("prefect_harness")
def test_demo_small_and_rerunnable(settings: Settings, engine: Engine) -> None:
    res = Resources(settings, engine)
    today = dt.date(2026, 11, 24)
    first = run_demo(res, tenants=12, events=2000, today=today, progress=lambda _: None)
    assert first.subscribed == 9
    assert first.rows == first.accepted + first.duplicates + sum(first.rejected.values())
    assert first.rejected["conflicting_duplicate"] > 0 and first.duplicates > 0
    assert first.invoices["generated"] == first.invoices["closed"] == 9
    text = format_report(first, settings.home_path, None)
    assert "Invoices: 9 generated, 9 closed" in text

    with engine.connect() as conn:
        invoices = conn.execute(
            sa.text("SELECT tenant_id, number, total FROM invoices ORDER BY tenant_id")
        ).all()
    second = run_demo(res, tenants=12, events=2000, today=today, progress=lambda _: None)
    assert second.accepted == 0 and second.rows == 0  # same files: skipped by sha256
    assert second.invoices["generated"] == 0 and second.invoices["skipped"] == 9
    with engine.connect() as conn:
        again = conn.execute(
            sa.text("SELECT tenant_id, number, total FROM invoices ORDER BY tenant_id")
        ).all()
    assert again == invoices  # closed invoices never change
