"""Documents (contract 5.3): HTML and PDF from one document model; the PDF text reads back."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal as D

import pypdf
import pytest
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from services.invoicing import close_invoice, generate_invoices, get_invoice, preview_invoice
from services.invoicing.documents import build_document, render
from tallyflow.core.errors import InvalidInput
from tallyflow.core.settings import Settings
from tests.services.test_invoicing import add_usage, seed_basic

NOV = BillingPeriod.parse("2026-11")
AT = dt.datetime(2026, 12, 4, 4, 0, tzinfo=dt.UTC)
SELLER = {
    "seller_name": "Tallyflow Demo GmbH",
    "seller_address": "Hauptstrasse 1\\n10115 Berlin",
    "seller_tax_id": "DE123456789",
}


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


@pytest.fixture
def closed_acme(engine: Engine) -> int:
    seed_basic(engine)
    with engine.begin() as conn:
        # two runs in one transaction (as finalize does over several periods)
        generate_invoices(conn, NOV)
        (acme,) = generate_invoices(conn, NOV, tenant_ids=["acme"]).invoice_ids
        return close_invoice(conn, acme, now=AT).id


def test_pdf_holds_the_number_the_lines_and_the_total(engine: Engine, closed_acme: int) -> None:
    with engine.connect() as conn:
        invoice = get_invoice(conn, closed_acme)
    data = render(invoice, Settings(**SELLER), "pdf")
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert "INV-2026-000001" in text and "Invoice" in text
    assert "Tallyflow Demo GmbH" in text and "10115 Berlin" in text and "DE123456789" in text
    assert "Bill to: acme" in text and "Issued: 2026-12-04" in text
    for line in invoice.lines or ():
        assert line.description.split(",")[0] in text
    assert "$30.00" in text and "$19.01" in text and "$6.00" in text  # the three lines
    assert "Total $55.01" in text
    assert "$0.01 / unit" in text  # the unit price of api.calls


def test_html_escapes_and_shows_every_line(engine: Engine, closed_acme: int) -> None:
    with engine.connect() as conn:
        invoice = get_invoice(conn, closed_acme)
    seller = {**SELLER, "seller_name": "<Acme & Co>"}
    page = render(invoice, Settings(**seller), "html").decode()
    assert "&lt;Acme &amp; Co&gt;" in page and "<Acme" not in page
    assert page.count("<tr>") == 1 + len(invoice.lines or ())  # header + one row per line
    assert "INV-2026-000001" in page and "$55.01" in page


def test_money_follows_the_locale_and_drafts_say_draft(engine: Engine) -> None:
    seed_basic(engine)
    with engine.begin() as conn:
        (nihon,) = generate_invoices(conn, NOV, tenant_ids=["nihon"]).invoice_ids
        draft = get_invoice(conn, nihon)
    de = build_document(draft, Settings(invoice_locale="de_DE"))
    assert de.number == "DRAFT" and de.total == "1.050\xa0¥"  # JPY: no minor unit
    assert build_document(draft, Settings()).total == "¥1,050"
    text = pdf_text(render(draft, Settings(invoice_locale="de_DE"), "pdf"))
    assert "DRAFT" in text and "1.050" in text
    with pytest.raises(InvalidInput):
        build_document(draft, Settings(invoice_locale="xx_NOPE"))


def test_a_euro_pdf_prints_the_sign_and_corrections_name_their_invoice(
    engine: Engine, closed_acme: int
) -> None:
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-21", "100")
        (c,) = generate_invoices(conn, NOV).corrections
        adjustment = get_invoice(conn, c.invoice_id)
    doc = build_document(adjustment, Settings(), corrects_number="INV-2026-000001")
    assert (doc.title, doc.number, doc.corrects) == (
        "Adjustment",
        "DRAFT",
        "Corrects invoice INV-2026-000001",
    )
    text = pdf_text(render(adjustment, Settings(), "pdf", corrects_number="INV-2026-000001"))
    assert "Adjustment" in text and "Corrects invoice INV-2026-000001" in text
    assert "Total $1.00" in text
    eur = adjustment.__class__(**{**adjustment.__dict__, "currency": "EUR"})
    assert "Total 1,00\xa0€" in pdf_text(render(eur, Settings(invoice_locale="de_DE"), "pdf"))


def test_non_latin_names_and_rupee_or_euro_amounts_print_as_text(
    engine: Engine, closed_acme: int
) -> None:
    """The PDF's font is a Unicode TTF (DejaVu Sans, vendored): Greek, Cyrillic, accented
    names and the ₹ and € signs are real, extractable text; a character it lacks (CJK)
    prints as '?' without a warning."""
    import dataclasses

    with engine.connect() as conn:
        invoice = get_invoice(conn, closed_acme)
    lines = invoice.lines or ()
    named = dataclasses.replace(lines[0], description="Ωmega Доставка Ærø")
    inr = invoice.__class__(**{**invoice.__dict__, "currency": "INR", "lines": (named, *lines[1:])})
    seller = Settings(seller_name="Łódź Ψηφιακή ООО 東京", invoice_locale="en_IN")
    text = pdf_text(render(inr, seller, "pdf"))
    assert "Łódź Ψηφιακή ООО ??" in text
    assert "Ωmega Доставка Ærø" in text
    assert "Total ₹55.01" in text
    eur = invoice.__class__(**{**invoice.__dict__, "currency": "EUR"})
    text = pdf_text(render(eur, Settings(invoice_locale="fr_FR"), "pdf"))
    assert "Total 55,01" in text and "€" in text


def test_a_preview_renders_too(engine: Engine) -> None:
    seed_basic(engine)
    with engine.connect() as conn:
        preview = preview_invoice(conn, "acme", NOV, now=AT)
    text = pdf_text(render(preview, Settings(), "pdf"))
    assert "PREVIEW" in text and "Total $55.01" in text
    assert preview.total == D("55.01")
