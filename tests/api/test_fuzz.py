"""Never a 500 for user error: arbitrary JSON bodies, query strings and path segments get a
4xx with a JSON `detail` (or a success), whatever they contain."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import PRO_PLAN, TENANT

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# bodies shaped like the real ones, with any value in any field
field_names = st.sampled_from(
    [
        "code",
        "name",
        "currency",
        "base_fee",
        "quotas",
        "metric",
        "pricing",
        "limit",
        "included",
        "enforcement",
        "plan_code",
        "starts_on",
        "ends_on",
        "overrides",
        "effective_from",
        "effective_to",
        "quantity",
        "events",
        "event_id",
        "tenant_id",
        "occurred_at",
        "tiers",
        "model",
        "up_to",
        "unit_price",
    ]
)
shaped = st.dictionaries(field_names, json_values, max_size=6)
bodies = shaped | json_values

POSTS = [
    ("POST", "/api/billing/plans"),
    ("POST", f"/api/billing/tenants/{TENANT}/subscriptions"),
    ("PUT", f"/api/billing/tenants/{TENANT}/quotas/overrides"),
    ("POST", f"/api/billing/tenants/{TENANT}/quotas:check"),
    ("POST", "/api/billing/usage:ingest"),
]

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_clean(answer: Any) -> None:
    assert answer.status_code < 500, answer.text
    body = answer.json()
    if answer.status_code >= 400:
        assert isinstance(body["detail"], str) and body["detail"]


@pytest.mark.parametrize(("method", "path"), POSTS, ids=lambda v: str(v))
def test_any_body(client: TestClient, admin: dict[str, str], method: str, path: str) -> None:
    seeded = client.post("/api/billing/plans", json=PRO_PLAN, headers=admin)
    assert seeded.status_code == 201, seeded.text

    @FUZZ
    @given(body=bodies)
    def run(body: Any) -> None:
        assert_clean(client.request(method, path, json=body, headers=admin))

    run()


def test_any_event(client: TestClient, admin: dict[str, str]) -> None:
    events = st.lists(
        st.fixed_dictionaries(
            {"event_id": st.text(max_size=10), "tenant_id": st.just(TENANT)},
            optional={
                "metric": json_values,
                "quantity": json_values,
                "occurred_at": json_values,
                "properties": json_values,
            },
        )
        | json_values,
        max_size=5,
    )

    @FUZZ
    @given(batch=events)
    def run(batch: list[Any]) -> None:
        answer = client.post("/api/billing/usage:ingest", json={"events": batch}, headers=admin)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["accepted"] + body["duplicates"] + len(body["rejected"]) == len(batch)

    run()


@FUZZ
@given(
    tenant=st.text(min_size=1, max_size=80).filter(
        lambda t: "/" not in t and "?" not in t and "#" not in t
    ),
    start=st.text(max_size=12),
    end=st.text(max_size=12),
)
def test_any_path_and_query(
    client: TestClient, admin: dict[str, str], tenant: str, start: str, end: str
) -> None:
    from urllib.parse import quote

    base = f"/api/billing/tenants/{quote(tenant, safe='')}"
    assert_clean(
        client.get(f"{base}/usage/summary", params={"start": start, "end": end}, headers=admin)
    )
    assert_clean(client.get(f"{base}/quotas", headers=admin))
    assert_clean(client.post(f"{base}/quotas:check", json={"metric": "api_calls"}, headers=admin))
