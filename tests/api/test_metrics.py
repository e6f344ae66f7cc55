"""Billable metrics through the real app on real Postgres: definitions (strict, immutable),
plans naming them, matrix pricing rules, the usage endpoint and its scope/tenant rules."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.api.conftest import OTHER_TENANT, TENANT, Keys

METRICS = "/api/billing/metrics"
PLANS = "/api/billing/plans"

TOKENS: dict[str, Any] = {
    "code": "llm_tokens",
    "name": "LLM tokens",
    "event_metric": "llm.tokens",
    "aggregation": "sum",
    "value": "quantity",
    "filters": {"region": ["eu-west", "eu-central"]},
    "group_by": ["model"],
}


def test_create_list_get(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post(METRICS, json=TOKENS, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json() == {
        **TOKENS,
        "filters": {"region": ["eu-central", "eu-west"]},  # canonical: sorted, deduplicated
        "percentile": None,
        "time_unit": None,
    }
    mau = {"code": "mau", "aggregation": "unique_count", "value": "properties.user_id"}
    assert client.post(METRICS, json=mau, headers=admin).status_code == 201
    listed = client.get(METRICS, headers=admin).json()
    assert [m["code"] for m in listed] == ["llm_tokens", "mau"]
    got = client.get(f"{METRICS}/mau", headers=admin).json()
    # defaults: name and event_metric are the code
    assert got["name"] == "mau" and got["event_metric"] == "mau"
    assert client.get(f"{METRICS}/nope", headers=admin).status_code == 404


def test_duplicate_code_is_409_and_metrics_are_immutable(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    assert client.post(METRICS, json=TOKENS, headers=admin).status_code == 201
    again = client.post(METRICS, json={**TOKENS, "aggregation": "max"}, headers=admin)
    assert again.status_code == 409
    assert again.json()["code"] == "metric_exists"
    # not even a hand-typed UPDATE or DELETE changes a definition
    for statement in (
        "UPDATE metrics SET aggregation = 'max' WHERE code = 'llm_tokens'",
        "DELETE FROM metrics WHERE code = 'llm_tokens'",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="immutable"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert client.get(f"{METRICS}/llm_tokens", headers=admin).json()["aggregation"] == "sum"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": "Bad"}, "code"),
        ({"code": None}, "code"),
        ({"code": 5}, "code"),
        ({"event_metric": "-x"}, "event_metric"),
        ({"aggregation": "avg"}, "aggregation"),
        ({"aggregation": None}, "aggregation"),
        ({"value": "props.x"}, "value"),
        ({"value": "properties.9x"}, "value"),
        ({"value": "properties."}, "value"),
        ({"aggregation": "unique_count", "value": "quantity"}, "value"),
        ({"percentile": "95"}, "percentile"),  # not a percentile metric
        ({"aggregation": "percentile"}, "percentile"),  # missing
        ({"aggregation": "percentile", "percentile": "0"}, "percentile"),
        ({"aggregation": "percentile", "percentile": "100.5"}, "percentile"),
        ({"aggregation": "percentile", "percentile": 95}, "percentile"),  # a number
        ({"aggregation": "percentile", "percentile": "1e2"}, "percentile"),
        ({"time_unit": "hour"}, "time_unit"),  # not time_weighted_sum
        ({"aggregation": "time_weighted_sum", "time_unit": "week"}, "time_unit"),
        ({"filters": ["region"]}, "filters"),
        ({"filters": {"region": []}}, "filters.region"),
        ({"filters": {"region": "eu"}}, "filters.region"),
        ({"filters": {"region": [1]}}, "filters.region[0]"),
        ({"filters": {"bad key": ["x"]}}, "filters.bad key"),
        ({"group_by": "model"}, "group_by"),
        ({"group_by": ["a", "b", "c", "d"]}, "group_by"),
        ({"group_by": ["a", "a"]}, "group_by"),
        ({"group_by": ["a-b"]}, "group_by[0]"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"event_metric": ""}, "event_metric"),
        ({"value": ""}, "value"),
        ({"colour": "red"}, "colour"),
        ({"name": "a\x00b"}, "name"),  # Postgres text cannot hold NUL: 422, not 500
    ],
)
def test_invalid_metric_is_422_naming_the_field(
    client: TestClient, admin: dict[str, str], change: dict[str, Any], field: str
) -> None:
    answer = client.post(METRICS, json={**TOKENS, **change}, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(field), answer.json()["detail"]


def test_lone_surrogate_is_422_not_500(client: TestClient, admin: dict[str, str]) -> None:
    body = b'{"code": "m", "aggregation": "sum", "filters": {"region": ["\\ud800"]}}'
    answer = client.post(
        METRICS, content=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("filters.region[0]")


def test_body_that_is_not_an_object_is_422(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(METRICS, json=["x"], headers=admin).status_code == 422
    assert client.post(METRICS, content=b"{not json", headers=admin).status_code == 422


def test_scopes_and_tenant_keys(client: TestClient, keys: Keys) -> None:
    # a tenant-restricted key, even with billing.write, cannot define a metric
    assert client.post(METRICS, json=TOKENS, headers=keys.header(keys.tenant)).status_code == 403
    # a read-only key cannot either; no key is 401
    assert client.post(METRICS, json=TOKENS, headers=keys.header(keys.read)).status_code == 403
    assert client.post(METRICS, json=TOKENS).status_code == 401
    assert client.post(METRICS, json=TOKENS, headers=keys.header(keys.write)).status_code == 201
    # reading the catalog: any billing.read key, tenant keys included; a write-only key not
    assert client.get(METRICS, headers=keys.header(keys.tenant)).status_code == 200
    assert client.get(METRICS, headers=keys.header(keys.write)).status_code == 403
    assert client.get(f"{METRICS}/llm_tokens").status_code == 401


def _usage_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO metric_usage VALUES"
                " ('llm_tokens', :t, '2026-10-01', '2026-10-01', '2026-11-01', '', NULL, 30,"
                "  '2026-11-01T00:10:00Z'),"
                " ('llm_tokens', :t, '2026-10-01', '2026-10-01', '2026-11-01',"
                '  \'{"model": "large"}\', \'{"model": "large"}\', 20, \'2026-11-01T00:10:00Z\'),'
                " ('llm_tokens', :t, '2026-10-01', '2026-10-01', '2026-11-01',"
                "  '{\"model\": null}', '{\"model\": null}', 10, '2026-11-01T00:10:00Z'),"
                # a subscription window's row is not the calendar month's value
                " ('llm_tokens', :t, '2026-10-01', '2026-10-15', '2026-11-01', '', NULL, 3,"
                "  '2026-11-01T00:10:00Z')"
            ),
            {"t": TENANT},
        )


def test_usage_endpoint_shape_and_tenant_rule(
    client: TestClient, keys: Keys, admin: dict[str, str], engine: Engine
) -> None:
    assert client.post(METRICS, json=TOKENS, headers=admin).status_code == 201
    _usage_rows(engine)
    url = f"/api/billing/tenants/{TENANT}/metrics/llm_tokens/usage?period=2026-10"
    answer = client.get(url, headers=keys.header(keys.tenant))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "tenant_id": TENANT,
        "metric": "llm_tokens",
        "aggregation": "sum",
        "period_start": "2026-10-01",
        "period_end": "2026-11-01",
        "as_of": "2026-11-01T00:10:00Z",
        "value": "30",
        "groups": [
            {"group": {"model": "large"}, "value": "20"},
            {"group": {"model": None}, "value": "10"},
        ],
    }
    # another tenant's key: 403; no key 401; a month without usage: 0, no groups
    assert client.get(url, headers=keys.header(keys.other_tenant)).status_code == 403
    assert client.get(url).status_code == 401
    other = client.get(
        f"/api/billing/tenants/{OTHER_TENANT}/metrics/llm_tokens/usage?period=2026-10",
        headers=keys.header(keys.read),
    ).json()
    assert (other["value"], other["groups"], other["as_of"]) == ("0", [], None)
    bad = client.get(
        f"/api/billing/tenants/{TENANT}/metrics/llm_tokens/usage?period=2026-13", headers=admin
    )
    assert bad.status_code == 422 and "period" in bad.json()["detail"]
    missing = f"/api/billing/tenants/{TENANT}/metrics/nope/usage?period=2026-10"
    assert client.get(missing, headers=admin).status_code == 404


def _plan(quota: dict[str, Any]) -> dict[str, Any]:
    return {"code": "ai", "name": "AI", "currency": "USD", "base_fee": "0", "quotas": [quota]}


MATRIX = {
    "model": "matrix",
    "prices": [
        {
            "match": {"model": "large"},
            "included": "5",
            "pricing": {"model": "per_unit", "unit_price": "2"},
        }
    ],
    "default": {"included": "0", "pricing": {"model": "per_unit", "unit_price": "1"}},
}


@pytest.mark.parametrize(
    ("quota", "field"),
    [
        # a quota naming a billable metric: aggregation omitted or equal to the metric's
        (
            {"metric": "llm_tokens", "aggregation": "max", "pricing": MATRIX},
            "quotas[0].aggregation",
        ),
        # unique_count etc. need a billable metric
        (
            {
                "metric": "api_calls",
                "aggregation": "unique_count",
                "pricing": {"model": "per_unit", "unit_price": "1"},
            },
            "quotas[0].aggregation",
        ),
        # matrix: a grouped billable metric, match keys among group_by, included 0
        ({"metric": "api_calls", "pricing": MATRIX}, "quotas[0].pricing"),
        ({"metric": "mau", "pricing": MATRIX}, "quotas[0].pricing"),
        (
            {
                "metric": "llm_tokens",
                "pricing": {
                    **MATRIX,
                    "prices": [{**MATRIX["prices"][0], "match": {"region": "eu"}}],
                },
            },
            "quotas[0].pricing.prices[0].match.region",
        ),
        ({"metric": "llm_tokens", "included": "1", "pricing": MATRIX}, "quotas[0].included"),
        (
            {
                "metric": "llm_tokens",
                "pricing": {k: v for k, v in MATRIX.items() if k != "default"},
            },
            "body.quotas.0.pricing",
        ),
        (
            {"metric": "llm_tokens", "pricing": {**MATRIX, "default": {"pricing": MATRIX}}},
            "body.quotas.0.pricing",
        ),
        (
            {
                "metric": "llm_tokens",
                "pricing": {
                    **MATRIX,
                    "prices": [{"match": {"model": 5}, "pricing": MATRIX["default"]["pricing"]}],
                },
            },
            "body.quotas.0.pricing",
        ),
    ],
)
def test_plan_quotas_on_billable_metrics_are_checked(
    client: TestClient, admin: dict[str, str], quota: dict[str, Any], field: str
) -> None:
    assert client.post(METRICS, json=TOKENS, headers=admin).status_code == 201
    mau = {"code": "mau", "aggregation": "unique_count", "value": "properties.user_id"}
    assert client.post(METRICS, json=mau, headers=admin).status_code == 201
    answer = client.post(PLANS, json=_plan(quota), headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(field), answer.json()["detail"]


def test_plan_quota_takes_the_metric_aggregation(client: TestClient, admin: dict[str, str]) -> None:
    mau = {"code": "mau", "aggregation": "unique_count", "value": "properties.user_id"}
    assert client.post(METRICS, json=mau, headers=admin).status_code == 201
    assert client.post(METRICS, json=TOKENS, headers=admin).status_code == 201
    plan = _plan({"metric": "mau", "pricing": {"model": "per_unit", "unit_price": "1"}})
    plan["quotas"].append({"metric": "llm_tokens", "aggregation": "sum", "pricing": MATRIX})
    answer = client.post(PLANS, json=plan, headers=admin)
    assert answer.status_code == 201, answer.text
    by_metric = {q["metric"]: q for q in answer.json()["quotas"]}
    assert by_metric["mau"]["aggregation"] == "unique_count"  # omitted: the metric's
    assert by_metric["llm_tokens"]["pricing"]["model"] == "matrix"
