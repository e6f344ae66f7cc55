"""Preview and document endpoints, and their CLI twins: shapes, scopes, tenant rules."""

from __future__ import annotations

import io
import json

import pypdf
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from tests.api.conftest import OTHER_TENANT, TENANT, Keys
from tests.api.test_invoices import seeded  # noqa: F401  (fixture)

PREVIEW = f"/api/billing/tenants/{TENANT}/invoices:preview"


def _draft_id(client: TestClient, admin: dict[str, str]) -> int:
    answer = client.post(
        "/api/billing/invoices:generate",
        json={"period": "2026-11", "tenant_ids": [TENANT]},
        headers=admin,
    )
    assert answer.status_code == 200, answer.text
    (invoice_id,) = answer.json()["invoice_ids"]
    return int(invoice_id)


@pytest.mark.usefixtures("seeded")
def test_preview_shape_equals_the_draft(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.get(PREVIEW, params={"period": "2026-11"}, headers=admin)
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert (preview["status"], preview["id"], preview["number"], preview["kind"]) == (
        "preview",
        None,
        None,
        "invoice",
    )
    assert preview["total"] == "40.00" and preview["correction"] is None
    # nothing was written
    assert client.get(f"/api/billing/tenants/{TENANT}/invoices", headers=admin).json() == []
    draft = client.get(f"/api/billing/invoices/{_draft_id(client, admin)}", headers=admin).json()
    for key in ("tenant_id", "period", "currency", "total", "lines", "kind"):
        assert preview[key] == draft[key], key


@pytest.mark.usefixtures("seeded")
def test_preview_scopes_tenants_and_bad_input(client: TestClient, keys: Keys) -> None:
    h = keys.header
    q = {"period": "2026-11"}
    assert client.get(PREVIEW, params=q).status_code == 401
    assert client.get(PREVIEW, params=q, headers=h(keys.write)).status_code == 403  # no read
    assert client.get(PREVIEW, params=q, headers=h(keys.tenant)).status_code == 200
    other = client.get(PREVIEW, params=q, headers=h(keys.other_tenant))
    assert other.status_code == 403 and other.json()["code"] == "wrong_tenant"
    assert (
        client.get(
            f"/api/billing/tenants/{OTHER_TENANT}/invoices:preview",
            params=q,
            headers=h(keys.tenant),
        ).status_code
        == 403
    )
    for bad in ("2026-13", "26-11", "9999-99"):
        answer = client.get(PREVIEW, params={"period": bad}, headers=h(keys.read))
        assert answer.status_code == 422 and "detail" in answer.json(), bad
    none = client.get(
        "/api/billing/tenants/nobody/invoices:preview", params=q, headers=h(keys.read)
    )
    assert none.status_code == 404 and none.json()["code"] == "no_subscription"


@pytest.mark.usefixtures("seeded")
def test_documents(client: TestClient, keys: Keys, admin: dict[str, str]) -> None:
    h = keys.header
    invoice_id = _draft_id(client, admin)
    closed = client.post(f"/api/billing/invoices/{invoice_id}:close", headers=admin).json()
    pdf = client.get(f"/api/billing/invoices/{invoice_id}/document.pdf", headers=h(keys.tenant))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = pypdf.PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert closed["number"] in text and "Total $40.00" in text and "$10.00" in text
    page = client.get(f"/api/billing/invoices/{invoice_id}/document.html", headers=h(keys.read))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert closed["number"] in page.text and "$40.00" in page.text
    for fmt in ("pdf", "html"):
        url = f"/api/billing/invoices/{invoice_id}/document.{fmt}"
        assert client.get(url).status_code == 401
        assert client.get(url, headers=h(keys.write)).status_code == 403  # no read scope
        # another tenant's invoice answers like a missing one (ids are sequential)
        other = client.get(url, headers=h(keys.other_tenant))
        assert other.status_code == 404 and other.json()["code"] == "invoice_not_found"
        missing = client.get(f"/api/billing/invoices/999999/document.{fmt}", headers=admin)
        assert missing.status_code == 404
    assert client.get("/api/billing/invoices/0/document.pdf", headers=admin).status_code == 422
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/billing/invoices/{invoice_id}/document.pdf" in paths
    assert "/api/billing/tenants/{tenant_id}/invoices:preview" in paths


@pytest.mark.usefixtures("seeded")
def test_cli_preview_and_document(
    client: TestClient, admin: dict[str, str], engine: Engine, tmp_path: object
) -> None:
    from pathlib import Path

    from tallyflow.cli.app import app

    runner = CliRunner()
    shown = runner.invoke(
        app, ["invoices", "preview", "--tenant", TENANT, "--period", "2026-11", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert (payload["status"], payload["id"], payload["total"]) == ("preview", None, "40.00")
    api = client.get(PREVIEW, params={"period": "2026-11"}, headers=admin).json()
    assert {k: v for k, v in payload.items() if k != "as_of"} == {
        k: v for k, v in api.items() if k != "as_of"
    }
    assert (
        runner.invoke(
            app, ["invoices", "preview", "--tenant", "nobody", "--period", "2026-11"]
        ).exit_code
        == 2
    )
    assert (
        runner.invoke(
            app, ["invoices", "preview", "--tenant", TENANT, "--period", "2026-13"]
        ).exit_code
        == 2
    )
    assert runner.invoke(app, ["invoices", "preview", "--tenant", "bad tenant!"]).exit_code == 2

    invoice_id = _draft_id(client, admin)
    out = Path(str(tmp_path)) / "invoice.pdf"
    made = runner.invoke(
        app, ["invoices", "document", str(invoice_id), "--format", "pdf", "--out", str(out)]
    )
    assert made.exit_code == 0, made.output
    text = pypdf.PdfReader(out).pages[0].extract_text()
    assert "DRAFT" in text and "Total $40.00" in text
    html_out = Path(str(tmp_path)) / "invoice.html"
    assert (
        runner.invoke(
            app,
            ["invoices", "document", str(invoice_id), "--format", "html", "--out", str(html_out)],
        ).exit_code
        == 0
    )
    assert "$40.00" in html_out.read_text()
    for args in (
        ["invoices", "document", str(invoice_id), "--format", "docx", "--out", str(out)],
        ["invoices", "document", "999999", "--format", "pdf", "--out", str(out)],
        ["invoices", "document", str(invoice_id), "--format", "pdf"],
        ["invoices", "document", str(invoice_id), "--out", "/nonexistent/dir/x.pdf"],
    ):
        assert runner.invoke(app, args).exit_code == 2, args
