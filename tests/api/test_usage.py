"""Pushed usage (POST usage:ingest) and the usage summary, through the real app."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

# FIXME(relayout): period_of from services.quota is gone
from tallyflow.core.clock import utc_today

from tests.api.conftest import OTHER_TENANT, TENANT, Keys
from tests.helpers import rows

INGEST = "/api/billing/usage:ingest"
SUMMARY = f"/api/billing/tenants/{TENANT}/usage/summary"


def event(event_id: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "tenant_id": TENANT,
        "metric": "api_calls",
        "quantity": "1.5",
        "occurred_at": "2026-11-01T10:00:00Z",
    }
    base.update(changes)
    return base


def inbox(engine: Engine) -> list[tuple[Any, ...]]:
    return rows(
        engine,
        "SELECT tenant_id, event_id, metric, quantity, occurred_at, properties"
        " FROM ingest_inbox ORDER BY id",
    )


def test_push_accepts_rejects_and_stores(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    events: list[Any] = [
        event("e1", properties={"region": "eu"}),
        event("e2", quantity=2, occurred_at=1762000000),  # JSON number, epoch seconds
        event("e3", metric="Bad Metric"),
        event("e4", quantity="-1"),
        event("e5", occurred_at="2026-11-01T10:00:00"),  # no offset
        {"event_id": "e6", "tenant_id": TENANT, "metric": "api_calls"},  # no quantity
        "not an object",
        event("e1", properties={"region": "us"}),  # same content again: duplicate
        event("e2", quantity="3"),  # same key, other content: conflicting duplicate
        event("e7", quantity="0.0000005"),  # rounds half-even to 0.000000
        event("e8", quantity=12.25),  # a JSON float, taken by its text
    ]
    answer = client.post(INGEST, json={"events": events}, headers=admin)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "accepted": 4,
        "duplicates": 1,
        "rejected": [
            {"index": 2, "event_id": "e3", "reason": "invalid_metric"},
            {"index": 3, "event_id": "e4", "reason": "negative_quantity"},
            {"index": 4, "event_id": "e5", "reason": "naive_timestamp"},
            {"index": 5, "event_id": "e6", "reason": "missing_field"},
            {"index": 6, "event_id": None, "reason": "malformed_row"},
            {"index": 8, "event_id": "e2", "reason": "conflicting_duplicate"},
        ],
    }
    stored = inbox(engine)
    assert sorted((r[1], r[3]) for r in stored) == [
        ("e1", Decimal("1.500000")),
        ("e2", Decimal("2.000000")),
        ("e7", Decimal("0.000000")),
        ("e8", Decimal("12.250000")),
    ]
    by_id = {r[1]: r for r in stored}
    assert by_id["e1"][5] == {"region": "eu"}
    assert by_id["e2"][4] == dt.datetime.fromtimestamp(1762000000, dt.UTC)


def test_push_again_counts_duplicates_and_conflicts(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    first = client.post(INGEST, json={"events": [event("a"), event("b")]}, headers=admin)
    assert first.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    again = client.post(
        INGEST,
        json={"events": [event("a"), event("b", quantity="9"), event("c")]},
        headers=admin,
    )
    assert again.status_code == 202
    assert again.json() == {
        "accepted": 1,
        "duplicates": 1,
        "rejected": [{"index": 1, "event_id": "b", "reason": "conflicting_duplicate"}],
    }
    # the first accepted version stands
    assert {r[1]: r[3] for r in inbox(engine)}["b"] == Decimal("1.500000")


def test_push_future_event_is_rejected(client: TestClient, admin: dict[str, str]) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    answer = client.post(INGEST, json={"events": [event("f", occurred_at=later)]}, headers=admin)
    assert answer.json()["rejected"] == [
        {"index": 0, "event_id": "f", "reason": "future_timestamp"}
    ]


def test_push_limits_and_bad_bodies(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    too_many = client.post(
        INGEST, json={"events": [event(f"x{i}") for i in range(10_001)]}, headers=admin
    )
    assert too_many.status_code == 413
    assert too_many.json()["detail"] == "10001 events in one request; at most 10000"
    at_cap = client.post(
        INGEST, json={"events": [event(f"x{i}") for i in range(10_000)]}, headers=admin
    )
    assert at_cap.status_code == 202 and at_cap.json()["accepted"] == 10_000

    not_json = client.post(
        INGEST, content=b"{nope", headers={**admin, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and "not valid JSON" in not_json.json()["detail"]
    no_events = client.post(INGEST, json={"event": []}, headers=admin)
    assert no_events.status_code == 422 and "body.events" in no_events.json()["detail"]
    empty = client.post(INGEST, json={"events": []}, headers=admin)
    assert empty.json() == {"accepted": 0, "duplicates": 0, "rejected": []}
    assert len(inbox(engine)) == 10_000


def test_tenant_key_pushes_only_its_tenant(client: TestClient, keys: Keys, engine: Engine) -> None:
    own = client.post(INGEST, json={"events": [event("t1")]}, headers=keys.header(keys.tenant))
    assert own.status_code == 202 and own.json()["accepted"] == 1
    mixed = client.post(
        INGEST,
        json={"events": [event("t2"), event("t3", tenant_id=OTHER_TENANT)]},
        headers=keys.header(keys.tenant),
    )
    assert mixed.status_code == 403
    assert mixed.json()["detail"] == "this key is restricted to tenant 'acme'"
    assert [r[1] for r in inbox(engine)] == ["t1"]


def _usage_row(
    engine: Engine, metric: str, day: dt.date, total: str, count: int, peak: str
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO usage_daily (tenant_id, metric, usage_date, quantity_sum,"
                " event_count, quantity_max, first_occurred_at, last_occurred_at, updated_at)"
                " VALUES (:t, :m, :d, :s, :c, :x, now(), now(), :u)"
            ),
            {
                "t": TENANT,
                "m": metric,
                "d": day,
                "s": Decimal(total),
                "c": count,
                "x": Decimal(peak),
                "u": dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC),
            },
        )


def test_usage_summary(client: TestClient, admin: dict[str, str], engine: Engine) -> None:
    _usage_row(engine, "api_calls", dt.date(2026, 1, 3), "10.5", 3, "5")
    _usage_row(engine, "api_calls", dt.date(2026, 1, 4), "2", 1, "2")
    _usage_row(engine, "storage_gb", dt.date(2026, 1, 4), "7", 2, "4")
    _usage_row(engine, "api_calls", dt.date(2026, 2, 1), "100", 1, "100")  # outside

    answer = client.get(SUMMARY, params={"start": "2026-01-01", "end": "2026-02-01"}, headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "tenant_id": TENANT,
        "start": "2026-01-01",
        "end": "2026-02-01",
        "as_of": "2026-01-05T03:00:00Z",
        "metrics": [
            {
                "metric": "api_calls",
                "quantity_sum": "12.5",
                "event_count": 4,
                "quantity_max": "5",
                "days": [
                    {
                        "date": "2026-01-03",
                        "quantity_sum": "10.5",
                        "event_count": 3,
                        "quantity_max": "5",
                    },
                    {
                        "date": "2026-01-04",
                        "quantity_sum": "2",
                        "event_count": 1,
                        "quantity_max": "2",
                    },
                ],
            },
            {
                "metric": "storage_gb",
                "quantity_sum": "7",
                "event_count": 2,
                "quantity_max": "4",
                "days": [
                    {
                        "date": "2026-01-04",
                        "quantity_sum": "7",
                        "event_count": 2,
                        "quantity_max": "4",
                    },
                ],
            },
        ],
    }
    # end is exclusive: the 4th is out
    narrow = client.get(SUMMARY, params={"start": "2026-01-03", "end": "2026-01-04"}, headers=admin)
    assert [(m["metric"], m["quantity_sum"]) for m in narrow.json()["metrics"]] == [
        ("api_calls", "10.5")
    ]


def test_usage_summary_defaults_and_errors(client: TestClient, admin: dict[str, str]) -> None:
    start, end = period_of(utc_today())
    default = client.get(SUMMARY, headers=admin)
    assert default.status_code == 200
    assert default.json() == {
        "tenant_id": TENANT,
        "start": str(start),
        "end": str(end),
        "as_of": None,
        "metrics": [],
    }
    backwards = client.get(
        SUMMARY, params={"start": "2026-02-01", "end": "2026-01-01"}, headers=admin
    )
    assert backwards.status_code == 422
    assert (
        backwards.json()["detail"]
        == "end 2026-01-01 must be after start 2026-02-01 (end is exclusive)"
    )
    bad_date = client.get(SUMMARY, params={"start": "yesterday"}, headers=admin)
    assert bad_date.status_code == 422 and "query.start" in bad_date.json()["detail"]
