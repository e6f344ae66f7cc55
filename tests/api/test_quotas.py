"""Effective quotas and the quota check: every case of the contract, through the real app.

Usage is loaded the way an ingest run commits it (usage_daily rows, then
refresh_quota_usage with the run's as_of in the same transaction), from another
connection than the app's: the app sees it through LISTEN/NOTIFY.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

# FIXME(relayout): period_of from services.quota is gone
from tallyflow.core.clock import utc_today

from services.quota import refresh_quota_usage
from tests.api.conftest import PRO_PLAN, TENANT

CHECK = f"/api/billing/tenants/{TENANT}/quotas:check"
QUOTAS = f"/api/billing/tenants/{TENANT}/quotas"
AS_OF = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def load_usage(
    engine: Engine, rows: list[tuple[str, str, str, int, str]], *, as_of: dt.datetime = AS_OF
) -> None:
    """Commit usage_daily rows (tenant, metric, quantity_sum, event_count, quantity_max) for
    today and refresh quotas, as an ingest run does at its commit."""
    today = utc_today()
    with engine.begin() as conn:
        for tenant, metric, total, count, peak in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO usage_daily (tenant_id, metric, usage_date, quantity_sum,"
                    " event_count, quantity_max, first_occurred_at, last_occurred_at)"
                    " VALUES (:t, :m, :d, :s, :c, :x, now(), now())"
                    " ON CONFLICT (tenant_id, metric, usage_date) DO UPDATE SET"
                    " quantity_sum = EXCLUDED.quantity_sum, event_count = EXCLUDED.event_count,"
                    " quantity_max = EXCLUDED.quantity_max, updated_at = now()"
                ),
                {
                    "t": tenant,
                    "m": metric,
                    "d": today,
                    "s": Decimal(total),
                    "c": count,
                    "x": Decimal(peak),
                },
            )
        refresh_quota_usage(conn, today=today, as_of=as_of)


def eventually(
    probe: Callable[[], Any], expect: Callable[[Any], bool], timeout: float = 5.0
) -> Any:
    """Poll until a NOTIFY has reached the app (milliseconds in practice)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if expect(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@pytest.fixture
def subscribed(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/api/billing/plans", json=PRO_PLAN, headers=admin).status_code == 201
    start = period_of(utc_today())[0]
    answer = client.post(
        f"/api/billing/tenants/{TENANT}/subscriptions",
        json={"plan_code": "pro", "starts_on": str(start)},
        headers=admin,
    )
    assert answer.status_code == 201


def check(client: TestClient, headers: dict[str, str], metric: str, quantity: str = "1") -> Any:
    answer = client.post(CHECK, json={"metric": metric, "quantity": quantity}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_fresh_subscription_is_visible_to_the_next_check(
    client: TestClient, admin: dict[str, str], subscribed: None
) -> None:
    start, end = period_of(utc_today())
    assert check(client, admin, "api_calls") == {
        "allowed": True,
        "reason": "within_limit",
        "metric": "api_calls",
        "used": "0",
        "requested": "1",
        "limit": "1000",
        "remaining": "1000",
        "enforcement": "hard",
        "period_start": str(start),
        "period_end": str(end),
        "as_of": None,
    }


@pytest.mark.parametrize(
    ("used", "requested", "allowed", "reason", "remaining"),
    [
        # under the hard limit
        ("500", "1", True, "within_limit", "500"),
        # landing exactly on the limit is allowed (used + requested <= limit)
        ("999", "1", True, "within_limit", "1"),
        # at the limit, one more is refused
        ("1000", "1", False, "over_limit", "0"),
        # over the limit (late usage pushed it past): remaining never goes negative
        ("1200", "1", False, "over_limit", "0"),
        # a request of 0 at the limit is fine
        ("1000", "0", True, "within_limit", "0"),
        # a big request that would cross the limit
        ("10", "991", False, "over_limit", "990"),
    ],
)
def test_hard_limit(
    client: TestClient,
    admin: dict[str, str],
    engine: Engine,
    subscribed: None,
    used: str,
    requested: str,
    allowed: bool,
    reason: str,
    remaining: str,
) -> None:
    load_usage(engine, [(TENANT, "api_calls", used, 3, used)])
    body = eventually(
        lambda: check(client, admin, "api_calls", requested), lambda b: b["used"] == used
    )
    assert (body["allowed"], body["reason"], body["remaining"]) == (allowed, reason, remaining)
    assert body["used"] == used and body["requested"] == requested and body["limit"] == "1000"
    assert body["as_of"] == "2026-01-01T12:00:00Z"


def test_soft_limit_allows_and_says_so(
    client: TestClient, admin: dict[str, str], engine: Engine, subscribed: None
) -> None:
    # storage_gb aggregates by max: the peak of the month is what counts
    load_usage(engine, [(TENANT, "storage_gb", "30", 3, "12")])
    body = eventually(lambda: check(client, admin, "storage_gb"), lambda b: b["used"] == "12")
    assert body["allowed"] is True
    assert body["reason"] == "over_soft_limit"
    assert body["enforcement"] == "soft" and body["remaining"] == "0"
    under = check(client, admin, "storage_gb", "0")
    assert under["reason"] == "over_soft_limit"  # used 12 > limit 10 even with nothing more


def test_unlimited_metric(
    client: TestClient, admin: dict[str, str], engine: Engine, subscribed: None
) -> None:
    # seats aggregates by count of events
    load_usage(engine, [(TENANT, "seats", "99", 7, "1")])
    body = eventually(lambda: check(client, admin, "seats", "1000000"), lambda b: b["used"] == "7")
    assert body["allowed"] is True and body["reason"] == "unlimited"
    assert body["limit"] is None and body["remaining"] is None


def test_no_subscription_and_not_entitled(
    client: TestClient, admin: dict[str, str], subscribed: None
) -> None:
    nobody = client.post(
        "/api/billing/tenants/initech/quotas:check", json={"metric": "api_calls"}, headers=admin
    ).json()
    assert nobody["allowed"] is False and nobody["reason"] == "no_subscription"
    assert nobody["used"] is None and nobody["limit"] is None
    other = check(client, admin, "gpu_hours")
    assert other["allowed"] is False and other["reason"] == "not_entitled"


def test_ended_subscription_is_no_subscription(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/billing/plans", json=PRO_PLAN, headers=admin)
    today = utc_today()
    client.post(
        f"/api/billing/tenants/{TENANT}/subscriptions",
        json={
            "plan_code": "pro",
            "starts_on": str(today - dt.timedelta(days=40)),
            "ends_on": str(today),
        },
        headers=admin,
    )
    assert check(client, admin, "api_calls")["reason"] == "no_subscription"
    assert client.get(QUOTAS, headers=admin).json() == []


def test_override_beats_plan_and_expired_override_does_not(
    client: TestClient, admin: dict[str, str], engine: Engine, subscribed: None
) -> None:
    load_usage(engine, [(TENANT, "api_calls", "1500", 3, "900")])
    assert (
        eventually(lambda: check(client, admin, "api_calls"), lambda b: b["used"] == "1500")[
            "allowed"
        ]
        is False
    )
    today = utc_today()
    put = client.put(
        f"/api/billing/tenants/{TENANT}/quotas/overrides",
        json={
            "overrides": [
                {"metric": "api_calls", "limit": "2000"},
                # expired yesterday: the plan's soft enforcement of storage_gb stays
                {
                    "metric": "storage_gb",
                    "enforcement": "hard",
                    "effective_from": str(today - dt.timedelta(days=30)),
                    "effective_to": str(today),
                },
                # a metric the plan lacks, entitled by the override alone
                {"metric": "gpu_hours", "limit": "5"},
            ]
        },
        headers=admin,
    )
    assert put.status_code == 200
    # the very next check sees the override (no waiting: same process)
    body = check(client, admin, "api_calls")
    assert (body["allowed"], body["limit"], body["remaining"]) == (True, "2000", "500")
    # the override changes no usage, so as_of stays the one of the last aggregation
    assert body["as_of"] == "2026-01-01T12:00:00Z"
    assert check(client, admin, "storage_gb")["enforcement"] == "soft"
    gpu = check(client, admin, "gpu_hours", "6")
    assert (gpu["allowed"], gpu["reason"], gpu["limit"]) == (False, "over_limit", "5")

    quotas = client.get(QUOTAS, headers=admin)
    assert quotas.status_code == 200
    rows = {q["metric"]: q for q in quotas.json()}
    assert set(rows) == {"api_calls", "gpu_hours", "seats", "storage_gb"}
    assert rows["api_calls"]["source"] == "override"
    assert rows["api_calls"]["included"] == "100"  # null override fields keep the plan's
    assert rows["api_calls"]["used"] == "1500" and rows["api_calls"]["remaining"] == "500"
    assert rows["storage_gb"]["source"] == "plan"
    assert rows["gpu_hours"]["aggregation"] == "sum" and rows["gpu_hours"]["included"] == "0"
    assert rows["seats"]["limit"] is None and rows["seats"]["remaining"] is None


def test_freshness_after_an_aggregation_run(
    client: TestClient, admin: dict[str, str], engine: Engine, subscribed: None
) -> None:
    load_usage(engine, [(TENANT, "api_calls", "10", 1, "10")])
    eventually(lambda: check(client, admin, "api_calls"), lambda b: b["used"] == "10")
    later = dt.datetime(2026, 1, 2, 8, 30, tzinfo=dt.UTC)
    load_usage(engine, [(TENANT, "api_calls", "990", 5, "400")], as_of=later)
    body = eventually(lambda: check(client, admin, "api_calls"), lambda b: b["used"] == "990")
    assert body["used"] == "990" and body["as_of"] == "2026-01-02T08:30:00Z"
    assert body["remaining"] == "10"
    quotas = {q["metric"]: q for q in client.get(QUOTAS, headers=admin).json()}
    assert quotas["api_calls"]["as_of"] == "2026-01-02T08:30:00Z"


def test_check_validation(client: TestClient, admin: dict[str, str], subscribed: None) -> None:
    negative = client.post(CHECK, json={"metric": "api_calls", "quantity": "-1"}, headers=admin)
    assert negative.status_code == 422 and "body.quantity" in negative.json()["detail"]
    bad_metric = client.post(CHECK, json={"metric": "API calls"}, headers=admin)
    assert bad_metric.status_code == 422 and "body.metric" in bad_metric.json()["detail"]
    bad_tenant = client.post(
        "/api/billing/tenants/-bad-/quotas:check", json={"metric": "api_calls"}, headers=admin
    )
    assert bad_tenant.status_code == 422 and "path.tenant_id" in bad_tenant.json()["detail"]
    default = check(client, admin, "api_calls")
    assert default["requested"] == "1"
