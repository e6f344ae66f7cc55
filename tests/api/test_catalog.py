"""Plans, subscriptions and quota overrides through the real app on real Postgres."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import PRO_PLAN, TENANT

PLANS = "/api/billing/plans"
SUBS = f"/api/billing/tenants/{TENANT}/subscriptions"
OVERRIDES = f"/api/billing/tenants/{TENANT}/quotas/overrides"


def _plan(**changes: Any) -> dict[str, Any]:
    plan = copy.deepcopy(PRO_PLAN)
    plan.update(changes)
    return plan


def test_create_and_list_plans(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post(PLANS, json=_plan(), headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert isinstance(body["id"], int)
    assert body["code"] == "pro" and body["currency"] == "USD"
    assert body["base_fee"] == "49"  # a decimal string, never a float
    by_metric = {q["metric"]: q for q in body["quotas"]}
    assert by_metric["api_calls"] == {
        "metric": "api_calls",
        "aggregation": "sum",
        "included": "100",
        "limit": "1000",
        "enforcement": "hard",
        "pricing": {"model": "per_unit", "unit_price": "0.002"},
    }
    assert by_metric["seats"]["limit"] is None
    assert by_metric["seats"]["pricing"]["tiers"][1] == {
        "up_to": None,
        "unit_price": "1",
        "flat_fee": "0",
    }

    listed = client.get(PLANS, headers=admin)
    assert listed.status_code == 200
    assert [p["code"] for p in listed.json()] == ["pro"]
    assert listed.json()[0] == body


def test_duplicate_plan_code_is_409(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(PLANS, json=_plan(), headers=admin).status_code == 201
    again = client.post(PLANS, json=_plan(name="Other"), headers=admin)
    assert again.status_code == 409
    assert again.json()["detail"] == "plan 'pro' already exists"


def _tiers(*tiers: dict[str, Any]) -> dict[str, Any]:
    return _plan(
        quotas=[{"metric": "api_calls", "pricing": {"model": "graduated", "tiers": list(tiers)}}]
    )


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        # bad plan code
        (_plan(code="Pro Plan"), "body.code"),
        # unknown currency
        (_plan(currency="XXQ"), "body.currency"),
        # negative base fee
        (_plan(base_fee="-1"), "body.base_fee"),
        # money that is not a number
        (_plan(base_fee="ten"), "body.base_fee"),
        # unknown field
        (_plan(colour="blue"), "body.colour"),
        # unknown pricing model
        (
            _plan(quotas=[{"metric": "api_calls", "pricing": {"model": "magic"}}]),
            "body.quotas.0.pricing",
        ),
        # negative unit price
        (
            _plan(
                quotas=[
                    {"metric": "api_calls", "pricing": {"model": "per_unit", "unit_price": "-0.1"}}
                ]
            ),
            "body.quotas.0.pricing",
        ),
        # tiers not ascending
        (
            _tiers(
                {"up_to": "100", "unit_price": "1"},
                {"up_to": "50", "unit_price": "1"},
                {"up_to": None, "unit_price": "1"},
            ),
            "body.quotas.0.pricing",
        ),
        # no open-ended last tier
        (_tiers({"up_to": "100", "unit_price": "1"}), "body.quotas.0.pricing"),
        # two open-ended tiers
        (
            _tiers({"up_to": None, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}),
            "body.quotas.0.pricing",
        ),
        # the same metric twice
        (
            _plan(quotas=[PRO_PLAN["quotas"][0], PRO_PLAN["quotas"][0]]),
            "body.quotas",
        ),
        # bad metric name
        (_plan(quotas=[{**PRO_PLAN["quotas"][0], "metric": "API-calls"}]), "body.quotas.0.metric"),
        # unknown enforcement
        (
            _plan(quotas=[{**PRO_PLAN["quotas"][0], "enforcement": "strict"}]),
            "body.quotas.0.enforcement",
        ),
        # negative limit
        (_plan(quotas=[{**PRO_PLAN["quotas"][0], "limit": "-5"}]), "body.quotas.0.limit"),
    ],
)
def test_invalid_plan_is_422_naming_the_field(
    client: TestClient, admin: dict[str, str], plan: dict[str, Any], field: str
) -> None:
    answer = client.post(PLANS, json=plan, headers=admin)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert field in body["detail"]
    assert any(".".join(map(str, e["loc"])).startswith(field) for e in body["errors"])
    assert client.get(PLANS, headers=admin).json() == []


def test_subscriptions_and_plan_change(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(PLANS, json=_plan(), headers=admin).status_code == 201
    basic = client.post(PLANS, json=_plan(code="basic", name="Basic"), headers=admin)
    assert basic.status_code == 201, basic.text

    first = client.post(SUBS, json={"plan_code": "basic", "starts_on": "2026-01-01"}, headers=admin)
    assert first.status_code == 201, first.text
    assert first.json()["plan_code"] == "basic"
    assert first.json()["ends_on"] is None
    assert first.json()["tenant_id"] == TENANT

    # a later start ends the open subscription there (a plan change)
    change = client.post(SUBS, json={"plan_code": "pro", "starts_on": "2026-03-15"}, headers=admin)
    assert change.status_code == 201, change.text

    listed = client.get(SUBS, headers=admin)
    assert listed.status_code == 200
    assert [(s["plan_code"], s["starts_on"], s["ends_on"]) for s in listed.json()] == [
        ("basic", "2026-01-01", "2026-03-15"),
        ("pro", "2026-03-15", None),
    ]


def test_subscription_errors(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(PLANS, json=_plan(), headers=admin).status_code == 201
    unknown = client.post(
        SUBS, json={"plan_code": "nope", "starts_on": "2026-01-01"}, headers=admin
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "plan 'nope' does not exist"

    ok = client.post(
        SUBS,
        json={"plan_code": "pro", "starts_on": "2026-01-01", "ends_on": "2026-06-01"},
        headers=admin,
    )
    assert ok.status_code == 201
    overlap = client.post(
        SUBS,
        json={"plan_code": "pro", "starts_on": "2026-05-01", "ends_on": "2026-07-01"},
        headers=admin,
    )
    assert overlap.status_code == 409
    assert "overlaps" in overlap.json()["detail"]
    # an open subscription starting before an existing one overlaps it too
    before = client.post(SUBS, json={"plan_code": "pro", "starts_on": "2025-12-01"}, headers=admin)
    assert before.status_code == 409

    backwards = client.post(
        SUBS,
        json={"plan_code": "pro", "starts_on": "2026-08-01", "ends_on": "2026-07-01"},
        headers=admin,
    )
    assert backwards.status_code == 422
    assert "ends_on must be after starts_on" in backwards.json()["detail"]
    assert len(client.get(SUBS, headers=admin).json()) == 1


def test_overrides_are_replaced_as_a_set(client: TestClient, admin: dict[str, str]) -> None:
    # overrides may only name metrics the tenant's plan prices (the plan first)
    assert client.post(PLANS, json=_plan(), headers=admin).status_code == 201
    window = {"plan_code": "pro", "starts_on": "2025-01-01"}
    assert client.post(SUBS, json=window, headers=admin).status_code == 201
    first = client.put(
        OVERRIDES,
        json={
            "overrides": [
                {"metric": "api_calls", "limit": "5000"},
                {
                    "metric": "storage_gb",
                    "enforcement": "hard",
                    "effective_from": "2026-01-01",
                    "effective_to": "2026-02-01",
                },
            ]
        },
        headers=admin,
    )
    assert first.status_code == 200, first.text
    assert [(o["metric"], o["limit"], o["enforcement"]) for o in first.json()] == [
        ("api_calls", "5000", None),
        ("storage_gb", None, "hard"),
    ]
    second = client.put(
        OVERRIDES, json={"overrides": [{"metric": "seats", "included": "3"}]}, headers=admin
    )
    assert second.status_code == 200
    listed = client.get(OVERRIDES, headers=admin)
    assert listed.status_code == 200
    assert [(o["metric"], o["included"]) for o in listed.json()] == [("seats", "3")]

    cleared = client.put(OVERRIDES, json={"overrides": []}, headers=admin)
    assert cleared.status_code == 200 and cleared.json() == []


def test_override_validation(client: TestClient, admin: dict[str, str]) -> None:
    overlapping = client.put(
        OVERRIDES,
        json={
            "overrides": [
                {"metric": "api_calls", "limit": "1", "effective_to": "2026-03-01"},
                {"metric": "api_calls", "limit": "2", "effective_from": "2026-02-01"},
            ]
        },
        headers=admin,
    )
    assert overlapping.status_code == 422
    assert "overlapping windows" in overlapping.json()["detail"]
    negative = client.put(
        OVERRIDES, json={"overrides": [{"metric": "api_calls", "limit": "-1"}]}, headers=admin
    )
    assert negative.status_code == 422
    assert "body.overrides.0.limit" in negative.json()["detail"]
    today = dt.date(2026, 1, 1)
    backwards = client.put(
        OVERRIDES,
        json={
            "overrides": [
                {"metric": "api_calls", "effective_from": str(today), "effective_to": str(today)}
            ]
        },
        headers=admin,
    )
    assert backwards.status_code == 422
    assert client.get(OVERRIDES, headers=admin).json() == []


def test_numbers_too_large_for_the_database_are_422(
    client: TestClient, admin: dict[str, str]
) -> None:
    for plan in (
        _plan(base_fee="1e30"),
        _plan(quotas=[{**PRO_PLAN["quotas"][0], "limit": "1e40"}]),
    ):
        answer = client.post(PLANS, json=plan, headers=admin)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]
    override = client.put(
        OVERRIDES, json={"overrides": [{"metric": "api_calls", "included": "1e40"}]}, headers=admin
    )
    assert override.status_code == 422 and override.json()["detail"]
    assert client.get(PLANS, headers=admin).json() == []
