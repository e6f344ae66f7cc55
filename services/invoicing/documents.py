"""Invoice documents (contract 5.3): one document model, rendered to HTML and to PDF.

`build_document` turns an invoice (or a preview) into rows a customer can read, one per
line, whatever the line's kind: description, group, quantity, unit price or tiers, amount.
Both renderers only walk those rows, so a new line kind (credits, true-ups) needs no
template change. Money is formatted by Babel for the invoice's currency and
TALLYFLOW_INVOICE_LOCALE; the seller comes from settings.

- HTML: `templates/invoice.html`, filled with escaped values (stdlib string.Template).
- PDF: fpdf2 (pure Python wheel, no system library), real text in DejaVu Sans (TTF files
  vendored under `templates/fonts/`, Bitstream Vera / DejaVu licence beside them), embedded
  as a subset, so the PDF is searchable and its text extractable: Latin, Greek, Cyrillic
  and currency signs such as €, ₹, ¥ print as themselves.
  NOTE: DejaVu has no CJK glyphs (a CJK font is 10-20 MB); a character the font lacks is
  printed as '?' in the PDF (never a missing-glyph warning). The HTML shows every character.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal

from services.invoicing.views import (
    InvoiceLineView,
    InvoicePreview,
    InvoiceView,
    total_after_credits,
)
from tallyflow.core.errors import InvalidInput
from tallyflow.core.settings import Settings

KIND_TITLES = {"invoice": "Invoice", "adjustment": "Adjustment", "credit_note": "Credit note"}


@dataclass(frozen=True)
class Seller:
    name: str
    address_lines: tuple[str, ...] = ()
    tax_id: str = ""
    email: str = ""

    @classmethod
    def of(cls, settings: Settings) -> Seller:
        lines = settings.seller_address.replace("\\n", "\n").splitlines()
        return cls(
            name=settings.seller_name,
            address_lines=tuple(x.strip() for x in lines if x.strip()),
            tax_id=settings.seller_tax_id,
            email=settings.seller_email,
        )


@dataclass(frozen=True)
class DocumentRow:
    """One line of the document, already formatted for the locale."""

    description: str
    group: str
    period: str
    quantity: str
    price: str  # unit price, package, tiers or base fee; "" when not priced per unit
    amount: str


@dataclass(frozen=True)
class Document:
    title: str  # Invoice | Adjustment | Credit note
    number: str  # or DRAFT / PREVIEW
    status: str
    seller: Seller
    tenant_id: str
    period: str
    issue_date: str
    corrects: str  # "corrects invoice N" or ""
    currency: str
    rows: tuple[DocumentRow, ...]
    total: str
    notes: tuple[str, ...]


def check_locale(locale: str) -> str:
    """The locale if Babel knows it (en_US, de_DE, ...); InvalidInput otherwise."""
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        raise InvalidInput(f"unknown locale {locale!r}", code="unknown_locale") from None
    return locale


def money(amount: Decimal, currency: str, locale: str, *, exact: bool = False) -> str:
    """An amount for the locale; `exact` keeps digits beyond the minor unit (unit prices)."""
    return format_currency(amount, currency, locale=locale, decimal_quantization=not exact)


def number(value: Decimal, locale: str) -> str:
    """A quantity with every significant decimal (no trailing zeros, no rounding)."""
    normalized = value.normalize() if value != 0 else Decimal(0)
    if normalized == normalized.to_integral_value():
        normalized = normalized.quantize(Decimal(1))
    return format_decimal(normalized, locale=locale, decimal_quantization=False)


def _price(line: InvoiceLineView, currency: str, locale: str) -> str:
    """How the line is priced, read from its breakdown (unknown shapes print nothing)."""
    b: Mapping[str, Any] = line.breakdown or {}
    if "rerated_breakdown" in b:
        b = b["rerated_breakdown"]
    if line.kind == "base_fee" and "base_fee" in b:
        return f"{money(Decimal(b['base_fee']), currency, locale)} / month"
    pricing = b.get("pricing")
    if not isinstance(pricing, Mapping):
        return ""
    model = pricing.get("model")
    if model == "per_unit":
        return f"{money(Decimal(pricing['unit_price']), currency, locale, exact=True)} / unit"
    if model == "package":
        return (
            f"{money(Decimal(pricing['package_price']), currency, locale)} per"
            f" {number(Decimal(pricing['package_size']), locale)}"
        )
    if model in ("graduated", "volume"):
        parts = []
        for tier in pricing.get("tiers", []):
            up_to = tier.get("up_to")
            bound = f"≤ {number(Decimal(up_to), locale)}" if up_to is not None else "above"
            text = f"{bound}: {money(Decimal(tier['unit_price']), currency, locale, exact=True)}"
            if Decimal(tier.get("flat_fee", "0")):
                text += f" + {money(Decimal(tier['flat_fee']), currency, locale)}"
            parts.append(text)
        return f"{model}: " + "; ".join(parts)
    return str(model or "")


def _days(start: dt.date, end: dt.date) -> str:
    """[start, end) as the inclusive days a customer reads: 2026-11-01 – 2026-11-30."""
    last = end - dt.timedelta(days=1)
    return f"{start:%Y-%m-%d}" if last <= start else f"{start:%Y-%m-%d} – {last:%Y-%m-%d}"


def _group(line: InvoiceLineView) -> str:
    group = getattr(line, "group", None) or (line.breakdown or {}).get("group")
    if isinstance(group, Mapping):
        return ", ".join(f"{k}={v}" for k, v in group.items())
    return ""


def build_document(
    invoice: InvoiceView | InvoicePreview,
    settings: Settings,
    *,
    corrects_number: str | None = None,
) -> Document:
    """The document of an invoice, adjustment, credit note or preview."""
    locale = check_locale(settings.invoice_locale)
    currency = invoice.currency
    rows = tuple(
        DocumentRow(
            description=li.description,
            group=_group(li),
            period=_days(li.window_start, li.window_end),
            quantity=number(li.quantity, locale),
            price=_price(li, currency, locale),
            amount=money(li.amount, currency, locale),
        )
        for li in invoice.lines or ()
    )
    if isinstance(invoice, InvoicePreview):
        shown_number, issued = "PREVIEW", f"not issued (as of {invoice.as_of:%Y-%m-%d %H:%M} UTC)"
    elif invoice.number:
        closed = invoice.closed_at or invoice.created_at
        shown_number, issued = invoice.number, f"{closed.astimezone(dt.UTC):%Y-%m-%d}"
    else:
        shown_number, issued = "DRAFT", "not issued"
    notes = []
    if invoice.status == "void":
        notes.append("This document is VOID.")
    if invoice.status in ("draft", "preview"):
        notes.append("Draft: amounts may still change until the invoice is issued.")
        after = total_after_credits(invoice.total, invoice.lines or ())
        if after != invoice.total:
            notes.append(
                "Prepaid credits would apply at issue (the credit lines above, not in the"
                f" total): {money(after, currency, locale)} after credits."
            )
    corrects = ""
    if isinstance(invoice, InvoiceView) and invoice.corrects_invoice_id is not None:
        corrects = f"Corrects invoice {corrects_number or invoice.corrects_invoice_id}"
    return Document(
        title=KIND_TITLES.get(invoice.kind, invoice.kind),
        number=shown_number,
        status=invoice.status,
        seller=Seller.of(settings),
        tenant_id=invoice.tenant_id,
        period=_days(invoice.period_start, invoice.period_end),
        issue_date=issued,
        corrects=corrects,
        currency=currency,
        rows=rows,
        total=money(invoice.total, currency, locale),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------

_ROW = Template(
    "<tr><td>$description<div class='sub'>$period</div></td>$group_cell"
    "<td class='num'>$quantity</td><td>$price</td><td class='num'>$amount</td></tr>"
)


def _template() -> Template:
    text = resources.files("services.invoicing").joinpath("templates/invoice.html")
    return Template(text.read_text(encoding="utf-8"))


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page (inline CSS, no external resources)."""
    e = html.escape
    grouped = any(row.group for row in doc.rows)
    rows = "\n".join(
        _ROW.substitute(
            {k: e(v) for k, v in row.__dict__.items()},
            group_cell=f"<td>{e(row.group)}</td>" if grouped else "",
        )
        for row in doc.rows
    )
    seller = "<br>".join(
        e(x)
        for x in (
            doc.seller.name,
            *doc.seller.address_lines,
            f"Tax id: {doc.seller.tax_id}" if doc.seller.tax_id else "",
            doc.seller.email,
        )
        if x
    )
    return _template().substitute(
        title=e(f"{doc.title} {doc.number}"),
        kind=e(doc.title),
        number=e(doc.number),
        status=e(doc.status),
        seller=seller,
        tenant=e(doc.tenant_id),
        period=e(doc.period),
        issue_date=e(doc.issue_date),
        corrects=f"<p class='corrects'>{e(doc.corrects)}</p>" if doc.corrects else "",
        currency=e(doc.currency),
        group_head="<th>Group</th>" if grouped else "",
        rows=rows or "<tr><td colspan='5'>No lines.</td></tr>",
        total=e(doc.total),
        notes="".join(f"<p class='note'>{e(n)}</p>" for n in doc.notes),
    )


# ---------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------


FONT_FAMILY = "dejavu"
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}


@cache
def _font_paths() -> dict[str, str]:
    folder = resources.files("services.invoicing").joinpath("templates/fonts")
    return {style: str(folder.joinpath(name)) for style, name in _FONT_FILES.items()}


@cache
def _covered() -> frozenset[int]:
    """The code points every style of the font has a glyph for."""
    from fontTools.ttLib import TTFont

    sets = []
    for path in _font_paths().values():
        with TTFont(path, lazy=True) as font:
            sets.append(set(font.getBestCmap()))
    return frozenset(set.intersection(*sets))


def _printable(text: str) -> str:
    """The text with every character the font lacks as '?' (narrow no-break spaces, which
    Babel puts in some locales' amounts, as plain spaces)."""
    covered = _covered()
    text = text.replace("\u202f", " ")
    return "".join(ch if ord(ch) in covered or ch == "\n" else "?" for ch in text)


def render_pdf(doc: Document, locale: str) -> bytes:
    """The document as a PDF with real (extractable) text."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    del locale  # NOTE: amounts are formatted in build_document; every symbol prints as is
    t = _printable
    pdf = FPDF(format="A4")
    for style, path in _font_paths().items():
        pdf.add_font(FONT_FAMILY, style, path)
    pdf.set_title(t(f"{doc.title} {doc.number}"))
    pdf.set_author(t(doc.seller.name))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    width = pdf.epw
    pdf.set_font(FONT_FAMILY, "B", 18)
    pdf.cell(width / 2, 10, t(doc.title), new_x=XPos.RIGHT, new_y=YPos.TOP)
    pdf.set_font(FONT_FAMILY, "B", 12)
    pdf.cell(width / 2, 10, t(doc.number), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_font(FONT_FAMILY, "", 9)
    seller = [doc.seller.name, *doc.seller.address_lines]
    if doc.seller.tax_id:
        seller.append(f"Tax id: {doc.seller.tax_id}")
    if doc.seller.email:
        seller.append(doc.seller.email)
    facts = [
        f"Bill to: {doc.tenant_id}",
        f"Period: {doc.period}",
        f"Issued: {doc.issue_date}",
        f"Currency: {doc.currency}",
    ]
    if doc.corrects:
        facts.append(doc.corrects)
    y0 = pdf.get_y()
    pdf.multi_cell(width / 2, 4.5, t("\n".join(seller)), new_x=XPos.RIGHT, new_y=YPos.TOP)
    pdf.multi_cell(width / 2, 4.5, t("\n".join(facts)), align="R")
    pdf.set_y(max(pdf.get_y(), y0 + 4.5 * len(seller)) + 6)
    pdf.set_font(FONT_FAMILY, "", 8.5)
    grouped = any(r.group for r in doc.rows)
    titles = ["Description", "Group", "Quantity", "Price", "Amount"]
    widths = [44, 12, 12, 20, 12]
    aligns = ["LEFT", "LEFT", "RIGHT", "LEFT", "RIGHT"]
    if not grouped:  # no line has a group: no empty column
        del titles[1], widths[1], aligns[1]
    with pdf.table(
        col_widths=tuple(widths),
        text_align=tuple(aligns),
        line_height=4.5,
        first_row_as_headings=True,
    ) as table:
        header = table.row()
        for title in titles:
            header.cell(title)
        for r in doc.rows:
            row = table.row()
            row.cell(t(f"{r.description}\n{r.period}"))
            if grouped:
                row.cell(t(r.group))
            row.cell(t(r.quantity))
            row.cell(t(r.price))
            row.cell(t(r.amount))
    pdf.ln(4)
    pdf.set_font(FONT_FAMILY, "B", 12)
    pdf.cell(width, 8, t(f"Total {doc.total}"), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT_FAMILY, "I", 9)
    for note in doc.notes:
        pdf.cell(width, 5, t(note), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def render(
    invoice: InvoiceView | InvoicePreview,
    settings: Settings,
    fmt: str,
    *,
    corrects_number: str | None = None,
) -> bytes:
    """The document as bytes: fmt "html" (UTF-8) or "pdf"."""
    doc = build_document(invoice, settings, corrects_number=corrects_number)
    if fmt == "html":
        return render_html(doc).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(doc, settings.invoice_locale)
    raise InvalidInput(f"format {fmt!r} must be pdf or html", code="invalid_format")
