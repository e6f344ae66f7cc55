"""Pushed events reach usage after one ingest run, never twice after two, and the quota
check sees the run's aggregation (the real ingest flow under the Prefect test harness)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

# FIXME(relayout): period_of from services.quota is gone
from tallyflow.core.clock import utc_today

from tests.api.conftest import PRO_PLAN, TENANT

pytestmark = pytest.mark.slow


def _events(now: dt.datetime) -> list[dict[str, Any]]:
    at = now.replace(microsecond=0) - dt.timedelta(minutes=5)
    return [
        {
            "event_id": f"p{i}",
            "tenant_id": TENANT,
            "metric": "api_calls",
            "quantity": "2.5",
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
        }
        for i in range(4)
    ]


def _summary(client: TestClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    answer = client.get(f"/api/billing/tenants/{TENANT}/usage/summary", headers=admin)
    assert answer.status_code == 200
    metrics: list[dict[str, Any]] = answer.json()["metrics"]
    return metrics


def _check(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    answer = client.post(
        f"/api/billing/tenants/{TENANT}/quotas:check", json={"metric": "api_calls"}, headers=admin
    )
    body: dict[str, Any] = answer.json()
    return body


def test_pushed_events_count_once_after_ingest_runs(
    client: TestClient, admin: dict[str, str], engine: Engine, prefect_harness: None
) -> None:
    from flows.ingest_usage import ingest_usage

    client.post("/api/billing/plans", json=PRO_PLAN, headers=admin)
    client.post(
        f"/api/billing/tenants/{TENANT}/subscriptions",
        json={"plan_code": "pro", "starts_on": str(period_of(utc_today())[0])},
        headers=admin,
    )
    now = dt.datetime.now(dt.UTC)
    pushed = client.post("/api/billing/usage:ingest", json={"events": _events(now)}, headers=admin)
    assert pushed.status_code == 202 and pushed.json()["accepted"] == 4
    # accepted is durable but counts only after the next aggregation run
    assert _summary(client, admin) == []
    assert _check(client, admin)["used"] == "0"

    first = ingest_usage()
    assert first["accepted"] == 4 and first["duplicates"] == 0
    (metric,) = _summary(client, admin)
    assert (metric["metric"], metric["quantity_sum"], metric["event_count"]) == (
        "api_calls",
        "10",
        4,
    )

    # the run's refresh reached the API's snapshot through NOTIFY
    deadline = time.monotonic() + 5
    check = _check(client, admin)
    while check["used"] != "10" and time.monotonic() < deadline:
        time.sleep(0.02)
        check = _check(client, admin)
    assert check["used"] == "10" and check["remaining"] == "990"
    assert check["as_of"] is not None

    # pushing the same events again: duplicates at the door, nothing new to drain
    again = client.post("/api/billing/usage:ingest", json={"events": _events(now)}, headers=admin)
    assert again.json() == {"accepted": 0, "duplicates": 4, "rejected": []}
    second = ingest_usage()
    assert second["accepted"] == 0
    (metric,) = _summary(client, admin)
    assert (metric["quantity_sum"], metric["event_count"]) == ("10", 4)
    with engine.connect() as conn:
        undrained = conn.execute(
            sa.text("SELECT count(*) FROM ingest_inbox WHERE drained_run_id IS NULL")
        ).scalar_one()
    assert undrained == 0


def test_a_crash_before_the_commit_loses_nothing_and_counts_nothing_twice(
    client: TestClient,
    admin: dict[str, str],
    engine: Engine,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import flows.ingest_usage as ingest_module

    now = dt.datetime.now(dt.UTC)
    pushed = client.post("/api/billing/usage:ingest", json={"events": _events(now)}, headers=admin)
    assert pushed.json()["accepted"] == 4

    def crash_at(_: dt.datetime) -> Any:
        def refresh(conn: sa.Connection) -> None:
            # inside the run's one transaction, after the inbox was marked drained
            raise RuntimeError("crash before commit")

        return refresh

    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, "refresh_quotas_at", crash_at)
        with pytest.raises(RuntimeError, match="crash before commit"):
            ingest_module.ingest_usage()
    with engine.connect() as conn:
        undrained = conn.execute(
            sa.text("SELECT count(*) FROM ingest_inbox WHERE drained_run_id IS NULL")
        ).scalar_one()
    assert undrained == 4
    assert _summary(client, admin) == []

    rerun = ingest_module.ingest_usage()
    assert rerun["accepted"] == 4 and rerun["duplicates"] == 0
    (metric,) = _summary(client, admin)
    assert (metric["quantity_sum"], metric["event_count"]) == ("10", 4)
