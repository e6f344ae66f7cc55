"""Issue 11, scopes and audit: a tenant's own key cannot change its bill, and every change
through the API (or the key CLI) leaves an append-only audit row in its transaction."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from models.period import BillingPeriod
from services.api_keys import check_new_key, create_api_key
from services.invoicing import close_invoice, generate_invoices
from tallyflow.cli.app import app as cli
from tallyflow.core import migrate
from tallyflow.core.errors import InvalidInput
from tests.api.conftest import PRO_PLAN, TENANT, Keys

B = "/api/billing"
READ_ONLY_OK = {"/api/billing/usage:ingest", "/api/billing/tenants/{tenant_id}/quotas:check"}


def api_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path template) of every /api operation the app documents (new ones too)."""
    paths = client.get("/openapi.json").json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
    )


def fill(path: str, tenant: str, invoice_id: int) -> str:
    return (
        path.replace("{tenant_id}", tenant)
        .replace("{invoice_id}", str(invoice_id))
        .replace("{code}", "tokens")  # the billable metric `billed` defines
    )


@pytest.fixture
def billed(client: TestClient, admin: dict[str, str], engine: Engine) -> int:
    """TENANT on the pro plan since 2026-01 with a draft invoice for 2026-01, and a billable
    metric `tokens` (no plan prices it)."""
    assert client.post(f"{B}/plans", json=PRO_PLAN, headers=admin).status_code == 201
    metric = {"code": "tokens", "name": "Tokens", "aggregation": "sum"}
    assert client.post(f"{B}/metrics", json=metric, headers=admin).status_code == 201
    sub = {"plan_code": "pro", "starts_on": "2026-01-01"}
    assert (
        client.post(f"{B}/tenants/{TENANT}/subscriptions", json=sub, headers=admin).status_code
        == 201
    )
    with engine.begin() as conn:
        (invoice_id,) = generate_invoices(
            conn, BillingPeriod.parse("2026-01"), tenant_ids=[TENANT]
        ).invoice_ids
    return int(invoice_id)


def test_a_tenant_key_is_refused_on_every_write_endpoint(
    client: TestClient, keys: Keys, billed: int, engine: Engine
) -> None:
    writes = [(m, p) for m, p in api_routes(client) if m != "GET" and p not in READ_ONLY_OK]
    assert len(writes) >= 6  # plans, subscriptions, overrides, generate, close, void, ...
    for method, template in writes:
        path = fill(template, TENANT, billed)
        answer = client.request(
            method, path, json={"period": "2026-01"}, headers=keys.header(keys.tenant)
        )
        assert answer.status_code == 403, f"{method} {template}: {answer.text}"
        assert answer.json()["code"] in ("missing_scope", "tenant_key"), template
    # nothing changed: the draft is still a draft, no override, no second subscription
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM invoices")).scalars().all() == ["draft"]
        assert conn.execute(sa.text("SELECT count(*) FROM quota_overrides")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM subscriptions")).scalar_one() == 1
        audited = conn.execute(sa.text("SELECT action FROM audit_log ORDER BY id")).scalars().all()
    # the admin's own changes only (the `billed` fixture), none by the tenant key
    assert audited == ["plan.create", "metric.create", "subscription.create"]


def test_a_tenant_key_reads_only_its_own_tenant(
    client: TestClient, keys: Keys, billed: int
) -> None:
    reads = [p for m, p in api_routes(client) if m == "GET"]
    own = keys.header(keys.tenant)
    other = keys.header(keys.other_tenant)
    for template in reads:
        if "{tenant_id}" in template:
            mine = client.get(fill(template, TENANT, billed), headers=own)
            assert mine.status_code == 200, (template, mine.text)
            answer = client.get(fill(template, TENANT, billed), headers=other)
            assert answer.status_code == 403, template
        elif "{invoice_id}" in template:  # by id: another tenant's answers like a missing one
            assert client.get(fill(template, TENANT, billed), headers=own).status_code == 200
            assert client.get(fill(template, TENANT, billed), headers=other).status_code == 404
    # the quota check is a read too; the audit log is for global keys only
    check = f"{B}/tenants/{TENANT}/quotas:check"
    assert client.post(check, json={"metric": "api_calls"}, headers=other).status_code == 403
    assert client.get(f"{B}/audit", headers=own).status_code == 403
    assert client.get(f"{B}/audit", params={"tenant_id": TENANT}, headers=own).status_code == 403


def test_push_needs_usage_write_or_billing_write(client: TestClient, keys: Keys) -> None:
    body = {
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
    for key, status in [(keys.usage, 202), (keys.write, 202), (keys.tenant, 202), (keys.read, 403)]:
        assert (
            client.post(f"{B}/usage:ingest", json=body, headers=keys.header(key)).status_code
            == status
        )
    # a usage-only key reads nothing
    assert client.get(f"{B}/plans", headers=keys.header(keys.usage)).status_code == 403


def test_billing_write_is_for_global_keys_only(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="global keys only"):
        check_new_key("k", ["billing.write"], TENANT)
    with pytest.raises(InvalidInput, match="global keys only"), engine.begin() as conn:
        create_api_key(conn, name="k", scopes=["billing.read", "billing.write"], tenant_id=TENANT)
    # the database refuses it too (a hand-typed INSERT)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (name, prefix, key_hash, scopes, tenant_id)"
                " VALUES ('x', 'p1', 'h', ARRAY['billing.write'], 'acme')"
            )
        )


def test_cli_refuses_a_tenant_key_with_billing_write(engine: Engine) -> None:
    runner = CliRunner()
    done = runner.invoke(
        cli, ["api-key", "create", "--name", "t", "--tenant", TENANT, "--scope", "billing.write"]
    )
    assert done.exit_code == 2
    assert "global keys only" in done.output
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM api_keys")).scalar_one() == 0


def test_migration_maps_tenant_write_keys_to_usage_write_and_read(engine: Engine) -> None:
    migrate.downgrade(engine, "0003")
    engine.dispose()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (name, prefix, key_hash, scopes, tenant_id) VALUES"
                " ('tw', 'p1', 'h1', ARRAY['billing.write'], 'acme'),"
                " ('trw', 'p2', 'h2', ARRAY['billing.read', 'billing.write'], 'acme'),"
                " ('tr', 'p3', 'h3', ARRAY['billing.read'], 'acme'),"
                " ('gw', 'p4', 'h4', ARRAY['billing.read', 'billing.write'], NULL)"
            )
        )
    migrate.upgrade(engine)
    engine.dispose()
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT name, scopes FROM api_keys")).all())
    assert rows == {
        "tw": ["billing.read", "usage.write"],
        "trw": ["billing.read", "usage.write"],
        "tr": ["billing.read"],
        "gw": ["billing.read", "billing.write"],  # global keys keep billing.write
    }


def test_override_may_only_name_a_metric_the_plan_prices(
    client: TestClient, admin: dict[str, str], billed: int
) -> None:
    url = f"{B}/tenants/{TENANT}/quotas/overrides"
    for body in [
        {"overrides": [{"metric": "gpu_hours", "limit": "5"}]},  # no plan prices it
        # priced, but the window lies before the tenant's only subscription
        {"overrides": [{"metric": "api_calls", "limit": "5", "effective_to": "2025-06-01"}]},
    ]:
        answer = client.put(url, json=body, headers=admin)
        assert answer.status_code == 422 and answer.json()["code"] == "metric_not_in_plan"
    assert client.get(url, headers=admin).json() == []
    ok = client.put(url, json={"overrides": [{"metric": "api_calls", "limit": "5"}]}, headers=admin)
    assert ok.status_code == 200


def test_no_subscription_may_start_inside_or_before_a_closed_period(
    client: TestClient, admin: dict[str, str], billed: int, engine: Engine
) -> None:
    with engine.begin() as conn:
        close_invoice(conn, billed)  # January 2026 is issued
    url = f"{B}/tenants/{TENANT}/subscriptions"
    assert (
        client.post(f"{B}/plans", json={**PRO_PLAN, "code": "cheap"}, headers=admin).status_code
        == 201
    )
    for starts_on in ["2026-01-15", "2026-01-01", "2025-12-01"]:  # a backdated downgrade
        answer = client.post(
            url, json={"plan_code": "cheap", "starts_on": starts_on}, headers=admin
        )
        assert answer.status_code == 409, starts_on
        assert answer.json()["code"] == "period_closed"
    assert len(client.get(url, headers=admin).json()) == 1
    # from the first open period on, a plan change is fine
    later = client.post(url, json={"plan_code": "cheap", "starts_on": "2026-02-01"}, headers=admin)
    assert later.status_code == 201


def test_every_api_change_is_audited_with_before_and_after(
    client: TestClient, admin: dict[str, str], billed: int, engine: Engine
) -> None:
    url = f"{B}/tenants/{TENANT}/quotas/overrides"
    first = {"overrides": [{"metric": "api_calls", "limit": "5000"}]}
    second = {"overrides": [{"metric": "seats", "included": "3"}]}
    assert client.put(url, json=first, headers=admin).status_code == 200
    assert client.put(url, json=second, headers=admin).status_code == 200
    assert client.post(f"{B}/invoices/{billed}:close", headers=admin).status_code == 200
    assert client.post(f"{B}/invoices/{billed}:void", headers=admin).status_code == 200
    # a refused change leaves no audit row (same transaction)
    bad = client.post(  # overlaps the open subscription: 409
        f"{B}/tenants/{TENANT}/subscriptions",
        json={"plan_code": "pro", "starts_on": "2025-06-01", "ends_on": "2026-03-01"},
        headers=admin,
    )
    assert bad.status_code == 409

    log = client.get(f"{B}/audit", params={"tenant_id": TENANT}, headers=admin)
    assert log.status_code == 200
    entries = log.json()
    assert [e["action"] for e in entries] == [
        "subscription.create",
        "overrides.replace",
        "overrides.replace",
        "invoice.close",
        "invoice.void",
    ]
    assert {e["key_name"] for e in entries} == {"admin"}
    assert all(e["key_id"] is not None for e in entries)
    # the overrides' history: each replace holds the whole set before and after
    o1, o2 = entries[1], entries[2]
    assert o1["before"] == [] and [Decimal(o["limit"]) for o in o1["after"]] == [5000]
    assert o2["before"] == o1["after"]
    assert [(o["metric"], Decimal(o["included"])) for o in o2["after"]] == [("seats", 3)]
    close, void = entries[3], entries[4]
    assert (close["before"]["status"], close["after"]["status"]) == ("draft", "closed")
    assert (void["before"]["status"], void["after"]["status"]) == ("closed", "void")
    assert close["object_type"] == "invoice" and close["object_id"] == str(billed)
    # plans have no tenant: in the unfiltered log
    everything = client.get(f"{B}/audit", headers=admin).json()
    assert everything[0]["action"] == "plan.create" and everything[0]["tenant_id"] is None
    # since: a later time filters out everything before it
    since = dt.datetime.fromisoformat(entries[-1]["at"])
    later = client.get(f"{B}/audit", params={"since": since.isoformat()}, headers=admin).json()
    assert [e["action"] for e in later] == ["invoice.void"]


def test_audit_log_is_append_only_in_the_database(
    client: TestClient, admin: dict[str, str], billed: int, engine: Engine
) -> None:
    for statement in [
        "UPDATE audit_log SET key_name = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ]:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one() == 3
        )  # the `billed` fixture's three changes


def test_cli_key_changes_are_audited_as_cli(engine: Engine) -> None:
    runner = CliRunner()
    made = runner.invoke(
        cli,
        ["api-key", "create", "--name", "pusher", "--scope", "usage.write", "--tenant", TENANT],
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    rotated = runner.invoke(cli, ["api-key", "rotate", "--name", "pusher"])
    assert rotated.exit_code == 0, rotated.output
    new_key = rotated.stdout.strip().splitlines()[0]
    assert new_key.startswith("tf_") and new_key != key
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT key_name, action, tenant_id, before, after FROM audit_log ORDER BY id")
        ).all()
        live = conn.execute(
            sa.text("SELECT name, scopes, tenant_id FROM api_keys WHERE revoked_at IS NULL")
        ).all()
    assert [(r.key_name, r.action, r.tenant_id) for r in rows] == [
        ("cli", "api_key.create", TENANT),
        ("cli", "api_key.rotate", TENANT),
    ]
    assert "key_hash" not in rows[0].after and rows[1].before["prefix"] != rows[1].after["prefix"]
    assert [tuple(r) for r in live] == [("pusher", ["usage.write"], TENANT)]  # old one revoked
    # no secret in the audit log
    assert not any(re.search(r"tf_[0-9a-f]{12}_", str(tuple(r))) for r in rows)
    missing = runner.invoke(cli, ["api-key", "rotate", "--name", "nobody"])
    assert missing.exit_code == 1
