"""Reruns and replays give identical results (issue 6 item 2): the same landing three
times, the same events through files and HTTP, a backfill after the nightly runs, and
regenerated drafts — compared in full, not by counts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from models.period import BillingPeriod
from sqlalchemy.engine import Engine

from api.app import create_app
from flows.backfill_usage import backfill_usage
from flows.ingest_usage import ingest_usage
from services.api_keys import create_api_key
from services.invoicing import generate_invoices
from tallyflow.core.settings import Settings
from tallyflow.synthetic.generate import UsageSpec, generate_usage
from tests.helpers import rows, usage_full

pytestmark = pytest.mark.usefixtures("prefect_harness")

TODAY = dt.datetime.now(dt.UTC).date()
MONTH = TODAY.strftime("%Y-%m")
UPDATED_AT = 8  # usage_daily's last column


def _landing(settings: Settings, tmp_path: Path, seed: int = 11) -> Path:
    generate_usage(
        settings.landing_path,
        UsageSpec(
            month=MONTH,
            tenants=12,
            events=3000,
            seed=seed,
            duplicates=0.05,
            conflicts=0.02,
            late=0.05,
            bad=0.05,
        ),
        format="jsonl",
    )
    return settings.landing_path


def _quota_usage(engine: Engine) -> list[tuple[Any, ...]]:
    return rows(
        engine,
        'SELECT tenant_id, metric, used, "limit", included, enforcement, source'
        " FROM quota_usage ORDER BY 1, 2",
    )


def _subscribe_all(engine: Engine) -> None:
    from models.api import PlanIn, QuotaIn, SubscriptionIn
    from services import catalog
    from tallyflow.synthetic.generate import METRICS, tenant_ids

    with engine.begin() as conn:
        catalog.create_plan(
            conn,
            PlanIn(
                code="basic",
                name="Basic",
                currency="USD",
                base_fee=10,  # type: ignore[arg-type]
                quotas=[
                    QuotaIn(
                        metric=m,
                        limit=1_000_000,  # type: ignore[arg-type]
                        pricing={"model": "per_unit", "unit_price": "0.01"},
                    )
                    for m in METRICS
                ],
            ),
        )
        for tenant in tenant_ids(12):
            catalog.create_subscription(
                conn, tenant, SubscriptionIn(plan_code="basic", starts_on=TODAY.replace(day=1))
            )


def test_same_landing_three_times(settings: Settings, engine: Engine, tmp_path: Path) -> None:
    _subscribe_all(engine)
    _landing(settings, tmp_path)
    first = ingest_usage()
    usage, quotas = usage_full(engine), _quota_usage(engine)
    assert first["accepted"] > 0 and quotas and any(q[2] > 0 for q in quotas)
    for _ in range(2):
        again = ingest_usage()
        assert (again["files"], again["rows"]) == (0, 0)
        assert usage_full(engine) == usage  # every column, updated_at included
        assert _quota_usage(engine) == quotas


def test_same_events_through_files_and_http(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    _landing(settings, tmp_path)
    ingest_usage()
    from_files = usage_full(engine)
    # every accepted line pushed again over HTTP: all duplicates, nothing changes
    events = []
    for path in sorted(settings.landing_path.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
    with engine.begin() as conn:
        key = create_api_key(conn, name="pusher", scopes=["billing.write"], tenant_id=None).key
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/api/billing/usage:ingest",
            json={"events": events},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 202, answer.text
    drained = ingest_usage()
    assert drained["accepted"] == 0
    assert drained["rows"] == answer.json()["accepted"]  # each pushed event read once
    assert [r[:UPDATED_AT] for r in usage_full(engine)] == [r[:UPDATED_AT] for r in from_files]


def test_backfill_after_nightly_runs_is_identical(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    _subscribe_all(engine)
    _landing(settings, tmp_path)
    for path in sorted(settings.landing_path.glob("*.jsonl")):  # one run per night
        ingest_usage(paths=[str(path)])
    usage, quotas = usage_full(engine), _quota_usage(engine)
    first_day = TODAY.replace(day=1)
    backfill_usage(start=first_day, end=TODAY)
    assert usage_full(engine) == usage  # unchanged rows keep even their updated_at
    assert _quota_usage(engine) == quotas


def _invoices(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        heads = conn.execute(
            sa.text(
                "SELECT id, tenant_id, period_start, currency, status, total"
                " FROM invoices ORDER BY id"
            )
        ).all()
        lines = conn.execute(
            sa.text(
                "SELECT invoice_id, line_no, kind, metric, quantity, billable_quantity,"
                " pricing_model, amount, breakdown::text FROM invoice_lines ORDER BY 1, 2"
            )
        ).all()
    return [tuple(r) for r in heads] + [tuple(r) for r in lines]


def test_regenerating_drafts_twice_is_identical(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    _subscribe_all(engine)
    _landing(settings, tmp_path)
    ingest_usage()
    period = BillingPeriod.of(TODAY)
    with engine.begin() as conn:
        generate_invoices(conn, period)
    first = _invoices(engine)
    assert len([r for r in first if r[4:5] == ("draft",)]) == 12
    with engine.begin() as conn:
        generate_invoices(conn, period)
    assert _invoices(engine) == first
