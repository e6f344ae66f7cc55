"""Invoice endpoints end to end: the real app, real keys, a real Postgres."""

from __future__ import annotations

import re
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.api.conftest import OTHER_TENANT, TENANT, Keys
from tests.services.test_invoicing import PER_UNIT, add_usage, seed_plan, subscribe


@pytest.fixture
def seeded(engine: Engine) -> None:
    """acme and globex on 'pro' (USD 30.00/month) in November 2026, with some usage."""
    with engine.begin() as conn:
        plan = seed_plan(
            conn,
            "pro",
            base_fee="30.00",
            quotas={"api.calls": {"pricing": PER_UNIT, "included": "100"}},
        )
        subscribe(conn, TENANT, plan, "2026-11-01")
        subscribe(conn, OTHER_TENANT, plan, "2026-11-16")
        add_usage(conn, TENANT, "api.calls", "2026-11-03", "1100")
        add_usage(conn, OTHER_TENANT, "api.calls", "2026-11-20", "50")


def _generate(client: TestClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post(
        "/api/billing/invoices:generate", json={"period": "2026-11", **body}, headers=headers
    )
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


@pytest.mark.usefixtures("seeded")
def test_generate_list_get_close_void(client: TestClient, admin: dict[str, str]) -> None:
    body = _generate(client, admin)
    assert (body["generated"], body["skipped"]) == (2, 0)
    assert len(body["invoice_ids"]) == 2  # type: ignore[arg-type]

    listed = client.get(f"/api/billing/tenants/{TENANT}/invoices", headers=admin).json()
    (summary,) = listed
    assert summary["status"] == "draft" and summary["period"] == "2026-11"
    assert summary["total"] == "40.00"  # 30.00 + (1100 - 100) x 0.01; decimal string
    assert summary["lines"] is None

    invoice = client.get(f"/api/billing/invoices/{summary['id']}", headers=admin).json()
    assert [(li["kind"], li["amount"]) for li in invoice["lines"]] == [
        ("base_fee", "30.00"),
        ("usage", "10.00"),
    ]
    assert D(invoice["total"]) == sum(D(li["amount"]) for li in invoice["lines"])

    closed = client.post(f"/api/billing/invoices/{summary['id']}:close", headers=admin)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    # the API closes at its own clock: the year is the UTC year of that instant
    assert re.fullmatch(r"INV-\d{4}-000001", closed.json()["number"])
    assert closed.json()["number"][4:8] == closed.json()["closed_at"][:4]
    assert closed.json()["kind"] == "invoice" and closed.json()["corrects_invoice_id"] is None
    assert closed.json()["closed_at"] is not None

    again = client.post(f"/api/billing/invoices/{summary['id']}:close", headers=admin)
    assert again.status_code == 409
    assert "closed" in again.json()["detail"]

    # a rerun leaves the closed invoice alone (nothing changed: no correction either)
    rerun = _generate(client, admin)
    assert (rerun["generated"], rerun["skipped"], rerun["correction_ids"]) == (1, 0, [])

    voided = client.post(f"/api/billing/invoices/{summary['id']}:void", headers=admin)
    assert voided.status_code == 200 and voided.json()["status"] == "void"
    twice = client.post(f"/api/billing/invoices/{summary['id']}:void", headers=admin)
    assert twice.status_code == 409 and "void" in twice.json()["detail"]

    # the correction path: a fresh draft after the void
    body = _generate(client, admin, tenant_ids=[TENANT])
    assert body["generated"] == 1
    drafts = client.get(
        f"/api/billing/tenants/{TENANT}/invoices",
        params={"period": "2026-11", "status": "draft"},
        headers=admin,
    ).json()
    assert len(drafts) == 1 and drafts[0]["id"] != summary["id"]


@pytest.mark.usefixtures("seeded")
def test_not_found_and_bad_input(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/api/billing/invoices/999999", headers=admin).status_code == 404
    assert client.post("/api/billing/invoices/999999:close", headers=admin).status_code == 404
    assert client.post("/api/billing/invoices/999999:void", headers=admin).status_code == 404
    for period in ("2026-13", "2026-1", "nope"):
        response = client.post(
            "/api/billing/invoices:generate", json={"period": period}, headers=admin
        )
        assert response.status_code == 422, period
        assert "detail" in response.json()
    bad_status = client.get(
        f"/api/billing/tenants/{TENANT}/invoices", params={"status": "paid"}, headers=admin
    )
    assert bad_status.status_code == 422


@pytest.mark.usefixtures("seeded")
def test_auth(client: TestClient, keys: Keys) -> None:
    h = keys.header
    url = "/api/billing/invoices:generate"
    body = {"period": "2026-11"}
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body, headers=h("tf_nope")).status_code == 401
    assert client.post(url, json=body, headers=h(keys.read)).status_code == 403  # no write

    # a tenant key cannot generate at all (billing.write is for global keys only)
    assert client.post(url, json=body, headers=h(keys.tenant)).status_code == 403
    own = client.post(url, json={**body, "tenant_ids": [TENANT]}, headers=h(keys.admin))
    assert own.status_code == 200 and own.json()["generated"] == 1

    (mine,) = client.get(f"/api/billing/tenants/{TENANT}/invoices", headers=h(keys.read)).json()
    assert (
        client.get(f"/api/billing/tenants/{TENANT}/invoices", headers=h(keys.other_tenant))
    ).status_code == 403
    assert (
        client.get(f"/api/billing/invoices/{mine['id']}", headers=h(keys.tenant)).status_code == 200
    )
    # another tenant's invoice answers like a missing one (tests/api/test_security.py)
    assert (
        client.get(f"/api/billing/invoices/{mine['id']}", headers=h(keys.other_tenant))
    ).status_code == 404
    for key in (keys.tenant, keys.other_tenant):  # tenant keys never close or void
        for action in ("close", "void"):
            answer = client.post(f"/api/billing/invoices/{mine['id']}:{action}", headers=h(key))
            assert answer.status_code == 403, answer.text
    assert (
        client.post(f"/api/billing/invoices/{mine['id']}:close", headers=h(keys.read)).status_code
        == 403
    )
    assert (
        client.get(f"/api/billing/invoices/{mine['id']}", headers=h(keys.write)).status_code == 403
    )
    closed = client.post(f"/api/billing/invoices/{mine['id']}:close", headers=h(keys.write))
    assert closed.status_code == 200


@pytest.mark.usefixtures("seeded")
def test_closed_invoice_is_frozen_in_the_database(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    (invoice_id, _) = _generate(client, admin)["invoice_ids"]  # type: ignore[misc]
    assert (
        client.post(f"/api/billing/invoices/{invoice_id}:close", headers=admin).status_code == 200
    )
    with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
        conn.execute(sa.text("UPDATE invoices SET total = 0 WHERE id = :id"), {"id": invoice_id})
    assert getattr(info.value.orig, "sqlstate", None) == "55000"  # the freeze trigger


def test_openapi_lists_the_invoice_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/billing/invoices:generate",
        "/api/billing/tenants/{tenant_id}/invoices",
        "/api/billing/invoices/{invoice_id}",
        "/api/billing/invoices/{invoice_id}:close",
        "/api/billing/invoices/{invoice_id}:void",
    ):
        assert path in paths
