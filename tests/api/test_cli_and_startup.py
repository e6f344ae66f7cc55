"""`tallyflow api-key` and `tallyflow serve`: key printed alone on stdout, bad usage exits 2,
and nothing on the API's path imports Prefect."""

from __future__ import annotations

import os
import subprocess
import sys

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from tallyflow.cli.app import app as cli
from tallyflow.core.settings import Settings


def test_api_key_create_prints_only_the_key(settings: Settings) -> None:
    runner = CliRunner()
    made = runner.invoke(
        cli, ["api-key", "create", "--name", "ci", "--scope", "billing.read", "--tenant", "acme"]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert made.stdout == key + "\n" and key.startswith("tf_")
    assert "scopes billing.read, tenant acme" in made.stderr

    with TestClient(create_app(settings)) as client:
        auth = {"Authorization": f"Bearer {key}"}
        assert client.get("/api/billing/tenants/acme/quotas", headers=auth).json() == []
        other = client.get("/api/billing/tenants/globex/quotas", headers=auth)
        assert other.status_code == 403

    listed = runner.invoke(cli, ["api-key", "list"])
    assert listed.exit_code == 0 and "\tci\tbilling.read\tacme" in listed.stdout
    revoked = runner.invoke(cli, ["api-key", "revoke", key])
    assert revoked.exit_code == 0 and "revoked API key" in revoked.stderr
    again = runner.invoke(cli, ["api-key", "revoke", key])
    assert again.exit_code == 1 and "no live API key matches" in again.stderr


def test_api_key_bad_usage_exits_2(settings: Settings) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["api-key", "create", "--name", "x", "--scope", "billing.admin"])
    assert unknown.exit_code == 2 and "unknown scope 'billing.admin'" in unknown.stderr
    no_scope = runner.invoke(cli, ["api-key", "create", "--name", "x"])
    assert no_scope.exit_code == 2 and "--scope" in no_scope.stderr
    bad_tenant = runner.invoke(
        cli, ["api-key", "create", "--name", "x", "--scope", "billing.read", "--tenant", "-x"]
    )
    assert bad_tenant.exit_code == 2 and "not a valid tenant id" in bad_tenant.stderr


def test_api_path_does_not_import_prefect(settings: Settings) -> None:
    code = (
        "import sys\n"
        "import api.app, tallyflow.cli, tallyflow.cli.commands.serve, tallyflow.cli.commands.api_key\n"
        "api.app.create_app()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_openapi_and_docs(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        spec = client.get("/openapi.json")
        assert spec.status_code == 200
        paths = spec.json()["paths"]
        assert "/api/billing/tenants/{tenant_id}/quotas:check" in paths
        assert "/api/billing/usage:ingest" in paths
        assert "requestBody" in paths["/api/billing/usage:ingest"]["post"]
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
