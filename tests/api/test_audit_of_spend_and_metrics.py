"""Changes to billable metrics, credits, alerts, spend caps and webhooks are audited in the
change's own transaction, with before and after (contract 6)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.api.conftest import TENANT

B = "/api/billing"


def audit_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT action, tenant_id, object_type, before, after FROM audit_log ORDER BY id"
            )
        ).all()


def test_each_new_write_leaves_one_audit_row(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    metric = {"code": "tokens", "name": "Tokens", "aggregation": "sum"}
    assert client.post(f"{B}/metrics", json=metric, headers=admin).status_code == 201
    grant = {"amount": "50.00", "currency": "USD", "effective_from": "2026-10-01"}
    made = client.post(f"{B}/tenants/{TENANT}/credits", json=grant, headers=admin)
    assert made.status_code == 201, made.text
    alerts = {"alerts": [{"spend": "500.00"}]}
    put = client.put(f"{B}/tenants/{TENANT}/alerts", json=alerts, headers=admin)
    assert put.status_code == 200, put.text
    cap = client.put(f"{B}/tenants/{TENANT}/spend-cap", json={"amount": "900"}, headers=admin)
    assert cap.status_code == 200, cap.text
    hook = {"url": "https://hooks.example.com/tallyflow", "events": ["invoice.closed"]}
    created = client.post(f"{B}/webhooks", json=hook, headers=admin)
    assert created.status_code == 201, created.text
    gone = client.delete(f"{B}/webhooks/{created.json()['id']}", headers=admin)
    assert gone.status_code == 204

    rows = audit_rows(engine)
    assert [r.action for r in rows] == [
        "metric.create",
        "credit_grant.create",
        "alerts.replace",
        "spend_cap.set",
        "webhook.create",
        "webhook.delete",
    ]
    by_action = {r.action: r for r in rows}
    assert by_action["metric.create"].after["code"] == "tokens"
    assert by_action["credit_grant.create"].tenant_id == TENANT
    assert by_action["credit_grant.create"].after["amount"] == "50.00"
    assert by_action["alerts.replace"].before is not None
    assert by_action["spend_cap.set"].after["amount"] in ("900", "900.00")
    secret = created.json()["secret"]
    assert secret not in str(by_action["webhook.create"].after)  # never the secret


def test_a_refused_change_is_not_audited(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    bad = client.post(f"{B}/metrics", json={"code": "Bad Code", "name": "x"}, headers=admin)
    assert bad.status_code == 422
    assert audit_rows(engine) == []
