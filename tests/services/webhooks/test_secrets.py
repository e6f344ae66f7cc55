"""Webhook secrets sealed at rest with TALLYFLOW_SECRET_KEY (issue 16, migration 0009):
what the database holds, the configuration errors (API startup, registration, CLI), key
rotation, and the migration of plaintext rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from api.app import create_app
from services.api_keys import create_api_key
from services.webhooks.endpoints import create_endpoint, endpoint_secret_box
from tallyflow.cli.app import app as cli
from tallyflow.core import migrate
from tallyflow.core.secrets import SecretBox, SecretKeyError
from tallyflow.core.settings import Settings
from tests.helpers import TEST_BOX, TEST_SECRET_KEY, rows

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
# fixed (not generated): xdist workers must collect the same test ids
OTHER_KEY = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM="


def register(engine: Engine, box: SecretBox = TEST_BOX) -> str:
    with engine.begin() as conn:
        _, secret = create_endpoint(
            conn,
            url="http://127.0.0.1:9/hook",
            events=["invoice.closed"],
            allow_private=True,
            now=T0,
            box=box,
        )
    return secret


def stored(engine: Engine) -> list[str]:
    return [r[0] for r in rows(engine, "SELECT secret_ciphertext FROM webhook_endpoints")]


def test_the_database_holds_the_secret_sealed_only(engine: Engine) -> None:
    secret = register(engine)
    (token,) = stored(engine)
    assert secret.startswith("whsec_") and secret not in token
    assert secret[len("whsec_") :] not in token
    assert TEST_BOX.open(token) == secret
    # a plaintext secret is refused by the table itself
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_endpoints SET secret_ciphertext = :s"), {"s": secret})


def key_check(engine: Engine, key: str | None) -> SecretBox | None:
    with engine.connect() as conn:
        return endpoint_secret_box(conn, key)


def test_the_key_is_needed_once_endpoints_exist(engine: Engine) -> None:
    assert key_check(engine, None) is None  # no endpoint, no key: fine
    assert key_check(engine, TEST_SECRET_KEY) is not None
    register(engine)
    with pytest.raises(SecretKeyError, match="TALLYFLOW_SECRET_KEY is not set") as missing:
        key_check(engine, None)
    assert (missing.value.code, missing.value.status) == ("secret_key_missing", 503)
    with pytest.raises(SecretKeyError, match="not a Fernet key") as bad:
        key_check(engine, "not-a-key")
    assert bad.value.code == "secret_key_invalid"
    with pytest.raises(SecretKeyError, match="does not decrypt") as wrong:
        key_check(engine, OTHER_KEY)
    assert wrong.value.code == "secret_key_wrong"
    # a retired endpoint's secret is never needed again
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_endpoints SET deleted_at = now()"))
    assert key_check(engine, OTHER_KEY) is not None


def test_rotation_new_key_first_old_key_after(engine: Engine) -> None:
    old_secret = register(engine)
    rotated = SecretBox.from_setting(f"{OTHER_KEY},{TEST_SECRET_KEY}")
    new_secret = register(engine, rotated)
    old_token, new_token = stored(engine)
    assert key_check(engine, f"{OTHER_KEY},{TEST_SECRET_KEY}") is not None
    assert (rotated.open(old_token), rotated.open(new_token)) == (old_secret, new_secret)
    # the new key sealed the new endpoint: the old key alone no longer opens everything
    with pytest.raises(SecretKeyError):
        key_check(engine, TEST_SECRET_KEY)


@pytest.fixture
def admin_key(engine: Engine) -> dict[str, str]:
    with engine.begin() as conn:
        key = create_api_key(
            conn, name="admin", scopes=["billing.read", "billing.write"], tenant_id=None
        ).key
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyless(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.delenv("TALLYFLOW_SECRET_KEY")
    yield settings.model_copy(update={"secret_key": None})


def test_registering_without_a_key_is_a_503_naming_the_setting(
    keyless: Settings, admin_key: dict[str, str]
) -> None:
    with TestClient(create_app(keyless)) as client:
        answer = client.post(
            "/api/billing/webhooks",
            json={"url": "https://hooks.example.com/x", "events": ["invoice.closed"]},
            headers=admin_key,
        )
    assert answer.status_code == 503
    assert answer.json()["code"] == "secret_key_missing"
    assert "TALLYFLOW_SECRET_KEY" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("key", "code"), [(None, "secret_key_missing"), (OTHER_KEY, "secret_key_wrong")]
)
def test_the_api_refuses_to_start_when_endpoints_need_a_key(
    engine: Engine, keyless: Settings, key: str | None, code: str
) -> None:
    register(engine)
    settings = keyless.model_copy(update={"secret_key": None if key is None else _secret(key)})
    with pytest.raises(SecretKeyError) as refused, TestClient(create_app(settings)):
        pass
    assert refused.value.code == code


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


def test_serve_and_deliver_exit_2_with_the_message(
    engine: Engine, keyless: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(engine)
    runner = CliRunner()
    served = runner.invoke(cli, ["serve", "--port", "0"])
    assert served.exit_code == 2, served.output
    assert "TALLYFLOW_SECRET_KEY is not set" in served.output
    monkeypatch.setenv("TALLYFLOW_SECRET_KEY", OTHER_KEY)
    served = runner.invoke(cli, ["serve", "--port", "0"])
    assert served.exit_code == 2 and "does not decrypt" in served.output


def test_migration_0009_seals_plaintext_secrets(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate.downgrade(engine, "0008_ingest_history")
    engine.dispose()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO webhook_endpoints (url, events, secret) VALUES"
                " ('https://hooks.example.com/a', '{invoice.closed}', 'whsec_cGxhaW4=')"
            )
        )
    runner = CliRunner()
    monkeypatch.delenv("TALLYFLOW_SECRET_KEY")
    refused = runner.invoke(cli, ["db", "upgrade"])
    assert refused.exit_code == 2, refused.output
    assert "TALLYFLOW_SECRET_KEY is not set" in refused.output
    engine.dispose()
    assert migrate.current_revision(engine) == "0008_ingest_history"  # nothing changed
    assert rows(engine, "SELECT secret FROM webhook_endpoints") == [("whsec_cGxhaW4=",)]

    monkeypatch.setenv("TALLYFLOW_SECRET_KEY", TEST_SECRET_KEY)
    done = runner.invoke(cli, ["db", "upgrade"])
    assert done.exit_code == 0, done.output
    engine.dispose()
    (token,) = stored(engine)
    assert "whsec_" not in token and TEST_BOX.open(token) == "whsec_cGxhaW4="
    # and back: the downgrade opens them again
    migrate.downgrade(engine, "0008_ingest_history")
    engine.dispose()
    assert rows(engine, "SELECT secret FROM webhook_endpoints") == [("whsec_cGxhaW4=",)]
    migrate.upgrade(engine)
    engine.dispose()
