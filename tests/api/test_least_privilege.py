"""The API runs as a role without DDL rights (docs/SECURITY.md): it serves reads, pushes and
catalog changes, and cannot create or drop anything, nor rewrite the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url

from api.app import create_app
from tallyflow.core.settings import Settings
from tests.api.conftest import PRO_PLAN, TENANT, Keys

GRANTS = [
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {role}",
]


@pytest.fixture
def api_role(engine: Engine) -> Iterator[str]:
    role = f"tf_api_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        for grant in GRANTS:
            conn.execute(sa.text(grant.format(role=f'"{role}"')))
    yield role
    engine.dispose()
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
        conn.execute(sa.text(f'DROP ROLE "{role}"'))


def test_the_api_works_as_a_role_without_ddl_rights(
    settings: Settings, keys: Keys, api_role: str
) -> None:
    url = make_url(str(settings.database_url)).set(username=api_role, password=None)
    limited = settings.model_copy(update={"database_url": url.render_as_string(False)})
    admin = keys.header(keys.admin)
    with TestClient(create_app(limited)) as client:
        assert client.post("/api/billing/plans", json=PRO_PLAN, headers=admin).status_code == 201
        sub = {"plan_code": "pro", "starts_on": "2026-01-01"}
        subs = f"/api/billing/tenants/{TENANT}/subscriptions"
        assert client.post(subs, json=sub, headers=admin).status_code == 201
        push = {
            "events": [
                {
                    "event_id": "e1",
                    "tenant_id": TENANT,
                    "metric": "api_calls",
                    "quantity": "1",
                    "occurred_at": "2026-01-01T00:00:00Z",
                }
            ]
        }
        pushed = client.post("/api/billing/usage:ingest", json=push, headers=admin)
        assert pushed.status_code == 202 and pushed.json()["accepted"] == 1
        check = f"/api/billing/tenants/{TENANT}/quotas:check"
        assert client.post(check, json={"metric": "api_calls"}, headers=admin).status_code == 200
        assert len(client.get("/api/billing/audit", headers=admin).json()) == 2
        assert client.get("/readyz").status_code == 200
        engine = client.app.state.tallyflow.engine  # type: ignore[attr-defined]
        for ddl in ["CREATE TABLE x (a int)", "DROP TABLE audit_log", "TRUNCATE audit_log"]:
            with pytest.raises(sa.exc.ProgrammingError), engine.begin() as conn:
                conn.execute(sa.text(ddl))
