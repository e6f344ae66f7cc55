"""The auth matrix: every endpoint x {no key, bad key, read key, write key, own tenant's key,
another tenant's key}, plus key revocation and keys created while the app runs."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from models.period import BillingPeriod
from sqlalchemy.engine import Engine

from services.api_keys import create_api_key, revoke_api_key
from services.invoicing import generate_invoices
from tests.api.conftest import PRO_PLAN, TENANT, Keys

T = f"/api/billing/tenants/{TENANT}"
_counter = itertools.count(1)


def _plan() -> dict[str, Any]:
    return {**PRO_PLAN, "code": f"plan-{next(_counter)}"}


def _subscription() -> dict[str, Any]:
    # a fresh, non-overlapping window on every call
    n = next(_counter)
    return {
        "plan_code": "pro",
        "starts_on": f"{3000 + n:04d}-01-01",
        "ends_on": f"{3000 + n:04d}-02-01",
    }


def _push() -> dict[str, Any]:
    return {
        "events": [
            {
                "event_id": f"evt-{next(_counter)}",
                "tenant_id": TENANT,
                "metric": "api_calls",
                "quantity": "1",
                "occurred_at": "2026-01-01T00:00:00Z",
            }
        ]
    }


def _draft_invoice(engine: Engine) -> int:
    """A fresh draft invoice of TENANT (a new month on every call)."""
    n = next(_counter)
    period = BillingPeriod.parse(f"{2020 + n // 12:04d}-{n % 12 + 1:02d}")
    with engine.begin() as conn:
        (invoice_id,) = generate_invoices(conn, period, tenant_ids=[TENANT]).invoice_ids
    return int(invoice_id)


def invoice(engine: Engine) -> str:
    return f"/api/billing/invoices/{_draft_invoice(engine)}"


def invoice_close(engine: Engine) -> str:
    return f"{invoice(engine)}:close"


def invoice_void(engine: Engine) -> str:
    return f"{invoice(engine)}:void"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str | Callable[[Engine], str]
    scope: str  # "read" or "write"
    ok: int
    body: Callable[[], Any] | None = None
    tenant_scoped: bool = True  # another tenant's key gets 403
    global_only: bool = False  # any tenant key gets 403
    by_id: bool = False  # addressed by id: another tenant's key gets 404, as if missing

    def __str__(self) -> str:
        path = self.path if isinstance(self.path, str) else self.path.__name__
        return f"{self.method} {path}"


ENDPOINTS = [
    Endpoint("POST", "/api/billing/plans", "write", 201, _plan, False, True),
    Endpoint("GET", "/api/billing/plans", "read", 200, None, False),
    Endpoint("POST", f"{T}/subscriptions", "write", 201, _subscription),
    Endpoint("GET", f"{T}/subscriptions", "read", 200),
    Endpoint(
        "PUT",
        f"{T}/quotas/overrides",
        "write",
        200,
        lambda: {"overrides": [{"metric": "api_calls", "limit": "5"}]},
    ),
    Endpoint("GET", f"{T}/quotas/overrides", "read", 200),
    Endpoint("GET", f"{T}/quotas", "read", 200),
    Endpoint("POST", f"{T}/quotas:check", "read", 200, lambda: {"metric": "api_calls"}),
    # the tenant of pushed events is in the body: another tenant's key may not push them
    Endpoint("POST", "/api/billing/usage:ingest", "write", 202, _push),
    Endpoint("GET", f"{T}/usage/summary", "read", 200),
    # invoices (api/routes/invoices.py); a tenant key generates only its own tenant
    Endpoint(
        "POST",
        "/api/billing/invoices:generate",
        "write",
        200,
        lambda: {"period": "2020-01", "tenant_ids": [TENANT]},
    ),
    Endpoint("GET", f"{T}/invoices", "read", 200),
    Endpoint("GET", invoice, "read", 200, by_id=True),
    Endpoint("POST", invoice_close, "write", 200, by_id=True),
    Endpoint("POST", invoice_void, "write", 200, by_id=True),
]

ROLES = ["none", "bad", "read", "write", "tenant", "other_tenant"]


def expected(endpoint: Endpoint, role: str) -> tuple[int, str | None]:
    """(status, detail) the contract asks for."""
    if role == "none":
        return 401, "missing API key (Authorization: Bearer <key>)"
    if role == "bad":
        return 401, "unknown or revoked API key"
    scope = f"billing.{endpoint.scope}"
    if role in ("read", "write") and role != endpoint.scope:
        return 403, f"this key lacks the {scope} scope"
    if role in ("tenant", "other_tenant") and endpoint.global_only:
        return 403, "this endpoint needs a key not restricted to a tenant"
    if role == "other_tenant" and endpoint.by_id:
        return 404, None  # the detail names the id, like a missing invoice's
    if role == "other_tenant" and endpoint.tenant_scoped:
        return 403, "this key is restricted to tenant 'globex'"
    return endpoint.ok, None


def headers(keys: Keys, role: str) -> dict[str, str]:
    if role == "none":
        return {}
    if role == "bad":
        return keys.header("tf_000000000000_not-a-real-key")
    return keys.header(getattr(keys, role))


@pytest.fixture
def with_plan(client: TestClient, admin: dict[str, str]) -> None:
    """The plan, and TENANT subscribed to it through 2029 (so invoices can be generated)."""
    assert client.post("/api/billing/plans", json=PRO_PLAN, headers=admin).status_code == 201
    window = {"plan_code": "pro", "starts_on": "2020-01-01", "ends_on": "2030-01-01"}
    assert client.post(f"{T}/subscriptions", json=window, headers=admin).status_code == 201


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_auth_matrix(
    client: TestClient, keys: Keys, engine: Engine, with_plan: None, endpoint: Endpoint
) -> None:
    for role in ROLES:
        body = endpoint.body() if endpoint.body else None
        path = endpoint.path if isinstance(endpoint.path, str) else endpoint.path(engine)
        answer = client.request(endpoint.method, path, json=body, headers=headers(keys, role))
        status, detail = expected(endpoint, role)
        assert answer.status_code == status, f"{endpoint} as {role}: {answer.text}"
        payload = answer.json()
        if detail is not None:
            assert payload["detail"] == detail, f"{endpoint} as {role}"
            if status == 401:
                assert answer.headers["www-authenticate"] == "Bearer"
        elif status >= 400:
            assert payload["code"] == "invoice_not_found", f"{endpoint} as {role}"
        else:
            assert "detail" not in payload if isinstance(payload, dict) else True


def test_malformed_authorization_headers(client: TestClient, keys: Keys) -> None:
    for value in ["Basic abc", "Bearer", "Bearer ", keys.read, f"Bearer {keys.read}x"]:
        answer = client.get("/api/billing/plans", headers={"Authorization": value})
        assert answer.status_code == 401, value
        assert answer.json()["detail"] in (
            "missing API key (Authorization: Bearer <key>)",
            "unknown or revoked API key",
        )


def test_key_created_and_revoked_while_running(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        new = create_api_key(conn, name="late", scopes=["billing.read"])
    auth = {"Authorization": f"Bearer {new.key}"}
    first = client.get("/api/billing/plans", headers=auth)
    assert first.status_code == 200 and first.json() == []

    with engine.begin() as conn:
        revoke_api_key(conn, new.record.prefix)
    deadline = time.monotonic() + 5
    answer = client.get("/api/billing/plans", headers=auth)
    while answer.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
        answer = client.get("/api/billing/plans", headers=auth)
    assert answer.status_code == 401
    assert answer.json()["detail"] == "unknown or revoked API key"


def test_only_a_hash_is_stored(engine: Engine) -> None:
    import sqlalchemy as sa

    with engine.begin() as conn:
        new = create_api_key(conn, name="x", scopes=["billing.write"], tenant_id="acme")
        row = (
            conn.execute(sa.text("SELECT * FROM api_keys WHERE id = :i"), {"i": new.record.id})
            .mappings()
            .one()
        )
    assert new.key not in {str(v) for v in row.values()}
    assert row["key_hash"] != new.key and len(row["key_hash"]) == 64
    assert row["scopes"] == ["billing.write"] and row["tenant_id"] == "acme"
