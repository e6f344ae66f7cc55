"""Billable metrics end to end: real files, the real ingest and backfill flows, real
Postgres, the invoice run. A metric defined after its events arrived bills the past month
through `backfill --metric`; later runs keep it current."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from flows.backfill_usage import backfill_usage
from flows.ingest_usage import ingest_usage
from models.api import PlanIn, SubscriptionIn
from models.period import BillingPeriod
from services.catalog import create_plan, create_subscription
from services.invoicing import generate_invoices, get_invoice
from services.invoicing.documents import render
from services.metrics.catalog import create_metric
from services.quota import check_quota, refresh_quota_usage
from tallyflow.core.errors import InvalidInput
from tallyflow.core.settings import Settings
from tests.helpers import ev, rows, usage_full, write_jsonl

pytestmark = pytest.mark.usefixtures("prefect_harness")

OCT = BillingPeriod.of(dt.date(2026, 10, 1))
TODAY = dt.date(2026, 10, 20)


def tok(event_id: str, day: int, quantity: str, **props: Any) -> dict[str, Any]:
    return ev(
        event_id,
        metric="llm.tokens",
        quantity=quantity,
        occurred_at=f"2026-10-{day:02d}T12:00:00Z",
        properties=props,
    )


EVENTS = [
    tok("e1", 5, "10", model="large", region="eu-west", user="u1"),
    tok("e2", 6, "4", model="small", region="eu-central", user="u2"),
    tok("e3", 7, "100", model="large", region="us-east", user="u1"),  # filtered out of tokens
    tok("e4", 8, "3", region="eu-west", user=1),  # no model: the null group; user 1 ...
    tok("e5", 9, "1", model="large", region="eu-west", user="1"),  # ... is user "1"
    ev("s1", metric="storage.gb", quantity="10", occurred_at="2026-09-20T00:00:00Z"),
    ev("s2", metric="storage.gb", quantity="20", occurred_at="2026-10-16T00:00:00Z"),
]

METRICS = [
    {
        "code": "tokens",
        "event_metric": "llm.tokens",
        "aggregation": "sum",
        "filters": {"region": ["eu-west", "eu-central"]},
        "group_by": ["model"],
    },
    {
        "code": "mau",
        "event_metric": "llm.tokens",
        "aggregation": "unique_count",
        "value": "properties.user",
    },
    {
        "code": "storage",
        "event_metric": "storage.gb",
        "aggregation": "time_weighted_sum",
        "time_unit": "day",
    },
]

PLAN = {
    "code": "ai",
    "name": "AI",
    "currency": "USD",
    "base_fee": "0",
    "quotas": [
        {
            "metric": "tokens",
            "pricing": {
                "model": "matrix",
                "prices": [
                    {
                        "match": {"model": "large"},
                        "included": "5",
                        "pricing": {"model": "per_unit", "unit_price": "2"},
                    },
                    # never reached for large: the first match wins
                    {
                        "match": {"model": "large"},
                        "pricing": {"model": "per_unit", "unit_price": "100"},
                    },
                ],
                "default": {"pricing": {"model": "per_unit", "unit_price": "1"}},
            },
        },
        {
            "metric": "mau",
            "included": "1",
            "limit": "5",
            "pricing": {"model": "per_unit", "unit_price": "0.5"},
        },
        {"metric": "storage", "pricing": {"model": "per_unit", "unit_price": "0.01"}},
    ],
}


def month_values(engine: Engine) -> dict[tuple[str, str], D]:
    found = rows(
        engine,
        "SELECT metric_code, group_key, value FROM metric_usage"
        " WHERE tenant_id = 'acme' AND window_start = '2026-10-01' AND window_end = '2026-11-01'",
    )
    return {(code, key): value for code, key, value in found}


def test_metric_defined_after_ingest_bills_the_past_month_through_backfill(
    settings: Settings, engine: Engine
) -> None:
    write_jsonl(settings.landing_path / "oct.jsonl", EVENTS)
    first = ingest_usage()
    assert first["accepted"] == len(EVENTS)
    assert "metric_unreadable" not in first  # no billable metric yet: the old shape
    with engine.begin() as conn:
        for m in METRICS:
            create_metric(conn, m)
    assert month_values(engine) == {}
    daily = usage_full(engine)

    with pytest.raises(InvalidInput, match="nope"):
        backfill_usage(start=OCT.start, end=dt.date(2026, 10, 31), metrics=["nope"])
    out = backfill_usage(
        start=OCT.start, end=dt.date(2026, 10, 31), metrics=["tokens", "mau", "storage"]
    )
    assert out["days"] == 31 and out["metric_unreadable"] == {"mau": 0, "storage": 0, "tokens": 0}
    assert usage_full(engine) == daily  # --metric leaves usage_daily alone
    assert month_values(engine) == {
        ("tokens", ""): D(18),
        ("tokens", '{"model": "large"}'): D(11),
        ("tokens", '{"model": "small"}'): D(4),
        ("tokens", '{"model": null}'): D(3),
        ("mau", ""): D(3),  # u1, u2, and 1 = "1"
        # 10 GB Oct 1-16 (carried from September) = 150, 20 GB Oct 16-Nov 1 = 320
        ("storage", ""): D(470),
    }

    with engine.begin() as conn:
        create_plan(conn, PlanIn.model_validate(PLAN))
        create_subscription(
            conn, "acme", SubscriptionIn(plan_code="ai", starts_on=OCT.start), today=TODAY
        )
        result = generate_invoices(conn, OCT)
        invoice = get_invoice(conn, result.invoice_ids[0])
    usage_lines = [
        (li.metric, li.group, li.quantity, li.billable_quantity, li.amount)
        for li in invoice.lines or ()
        if li.kind == "usage"
    ]
    assert usage_lines == [
        ("mau", None, D(3), D(2), D("1.00")),
        ("storage", None, D(470), D(470), D("4.70")),
        ("tokens", {"model": "large"}, D(11), D(6), D("12.00")),  # first entry: 5 included
        # (groups in the order of their JSON text)
        ("tokens", {"model": "small"}, D(4), D(4), D("4.00")),  # default
        ("tokens", {"model": None}, D(3), D(3), D("3.00")),  # default: null matches missing
    ]
    assert invoice.total == D("24.70")
    # each group's line keeps the entry that priced it, and its document shows that price
    tokens = [li for li in invoice.lines or () if li.metric == "tokens"]
    assert [(li.breakdown["matrix_entry"], li.breakdown["pricing"]) for li in tokens] == [
        (1, {"model": "per_unit", "unit_price": "2"}),
        (None, {"model": "per_unit", "unit_price": "1"}),
        (None, {"model": "per_unit", "unit_price": "1"}),
    ]
    page = render(invoice, settings, "html").decode()
    assert "model=large" in page and "$2.00 / unit" in page and "$1.00 / unit" in page

    # a later run keeps the metrics current: late events re-aggregate the month
    write_jsonl(
        settings.landing_path / "late.jsonl",
        [
            tok("e8", 10, "2", model="small", region="eu-west", user="u3"),
            tok("e9", 11, "1", model="small", region="eu-west"),  # no user: mau skips it
        ],
    )
    late = ingest_usage()
    assert late["metric_unreadable"] == {"mau": 1, "storage": 0, "tokens": 0}
    values = month_values(engine)
    assert values[("tokens", '{"model": "small"}')] == D(7)
    assert values[("tokens", "")] == D(21)
    assert values[("mau", "")] == D(4)

    # quotas use the metric's total: 4 distinct users of a limit of 5
    with engine.begin() as conn:
        refresh_quota_usage(conn, today=TODAY, as_of=None)
        decision = check_quota(conn, tenant_id="acme", metric="mau", requested=D(1), today=TODAY)
        over = check_quota(conn, tenant_id="acme", metric="mau", requested=D(2), today=TODAY)
    assert (decision.used, decision.allowed, decision.reason) == (D(4), True, "within_limit")
    assert (over.allowed, over.reason) == (False, "over_limit")
    aggregation = rows(engine, "SELECT aggregation FROM quota_usage WHERE metric = 'mau'")
    assert aggregation == [("unique_count",)]


def window_rows(engine: Engine) -> list[tuple[Any, ...]]:
    return rows(
        engine,
        "SELECT metric_code, window_start, window_end, group_key, value FROM metric_usage"
        " WHERE tenant_id = 'acme' ORDER BY 1, 2, 3, 4",
    )


def test_a_plan_change_mid_period_values_the_new_windows_without_a_backfill(
    settings: Settings, engine: Engine
) -> None:
    """Issue 13: the subscription change recomputes the tenant's metrics for its new
    windows in its own transaction; preview, close and quotas see them; a backfill
    afterwards gives the very same rows."""
    from services.invoicing.preview import preview_invoice

    with engine.begin() as conn:
        for m in METRICS:
            create_metric(conn, m)
        create_plan(conn, PlanIn.model_validate(PLAN))
        create_plan(conn, PlanIn.model_validate({**PLAN, "code": "ai2", "name": "AI 2"}))
        create_subscription(
            conn, "acme", SubscriptionIn(plan_code="ai", starts_on=OCT.start), today=TODAY
        )
    write_jsonl(settings.landing_path / "oct.jsonl", EVENTS)
    ingest_usage()
    # the plan changes on Oct 8: e1..e2 (Oct 5-6) on the old plan, e4, e5 on the new one
    with engine.begin() as conn:
        create_subscription(
            conn,
            "acme",
            SubscriptionIn(plan_code="ai2", starts_on=dt.date(2026, 10, 8)),
            today=TODAY,
            lake_root=settings.lake_location.url,
        )
    changed = window_rows(engine)
    new_window = {
        (code, key): value
        for code, start, _end, key, value in changed
        if start == dt.date(2026, 10, 8)
    }
    assert new_window == {
        ("tokens", ""): D(4),
        ("tokens", '{"model": "large"}'): D(1),
        ("tokens", '{"model": null}'): D(3),
        ("mau", ""): D(1),  # user 1 and "1": one value
        # 10 GB Oct 8-16 = 80, 20 GB Oct 16-Nov 1 = 320
        ("storage", ""): D(400),
    }
    with engine.connect() as conn:
        preview = preview_invoice(conn, "acme", OCT, now=dt.datetime(2026, 10, 20, tzinfo=dt.UTC))
    by_window = {
        (li.window_start, li.metric, json_group(li.group)): li.quantity
        for li in preview.lines
        if li.kind == "usage"
    }
    assert by_window[(dt.date(2026, 10, 8), "tokens", '{"model": "large"}')] == D(1)
    assert by_window[(dt.date(2026, 10, 8), "storage", "")] == D(400)
    assert by_window[(dt.date(2026, 10, 1), "tokens", '{"model": "large"}')] == D(10)
    assert by_window[(dt.date(2026, 10, 1), "storage", "")] == D(70)  # 10 GB x 7 days
    with engine.begin() as conn:
        decision = check_quota(conn, tenant_id="acme", metric="mau", requested=D(1), today=TODAY)
    assert decision.used == D(1)  # the new window's distinct users, not 0
    # a backfill of the month computes exactly what the change wrote
    backfill_usage(start=OCT.start, end=dt.date(2026, 10, 31), metrics=["tokens", "mau", "storage"])
    assert window_rows(engine) == changed
    with engine.begin() as conn:
        result = generate_invoices(conn, OCT, close=True)
        invoice = get_invoice(conn, result.invoice_ids[0])
    closed = {
        (li.window_start, li.metric, json_group(li.group)): li.quantity
        for li in invoice.lines or ()
        if li.kind == "usage"
    }
    assert closed == by_window


def json_group(group: Any) -> str:
    import json

    return "" if group is None else json.dumps(group, sort_keys=True)
