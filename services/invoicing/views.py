"""Invoices as the API, the CLI and documents show them; previews in the same shape."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson
import sqlalchemy as sa

from models.money import quantum
from models.period import BillingPeriod
from services.invoicing.compute import DraftInvoice
from services.proration import QUANTITY_QUANTUM
from tallyflow.core.errors import NotFound
from tallyflow.core.sqlfiles import sql

# ---------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLineView:
    """One invoice line as the API and the CLI show it (the API's schema uses it as is)."""

    line_no: int
    kind: Literal["base_fee", "usage", "commitment_true_up", "credit"]
    subscription_id: int | None
    plan_code: str
    metric: str | None
    description: str
    window_start: dt.date
    window_end: dt.date
    quantity: Decimal
    included: Decimal
    billable_quantity: Decimal
    pricing_model: str | None
    amount: Decimal
    breakdown: Mapping[str, Any]
    group: Mapping[str, Any] | None = None  # a matrix line's group (contract 4a)


@dataclass(frozen=True)
class InvoiceView:
    id: int
    tenant_id: str
    period_start: dt.date
    period_end: dt.date
    currency: str
    status: str
    number: str | None
    total: Decimal
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    voided_at: dt.datetime | None
    kind: str = "invoice"  # invoice | adjustment | credit_note
    corrects_invoice_id: int | None = None
    lines: tuple[InvoiceLineView, ...] | None = None

    @property
    def period(self) -> str:
        return f"{self.period_start:%Y-%m}"


def get_invoice(conn: sa.Connection, invoice_id: int) -> InvoiceView:
    """One invoice with its lines; NotFound if there is none."""
    invoices = _select_invoices(conn, invoice_ids=[invoice_id], with_lines=True)
    if not invoices:
        raise NotFound(f"invoice {invoice_id} not found", code="invoice_not_found")
    return invoices[0]


def list_invoices(
    conn: sa.Connection,
    tenant_id: str,
    *,
    period: BillingPeriod | None = None,
    status: str | None = None,
    with_lines: bool = False,
) -> list[InvoiceView]:
    """A tenant's invoices, newest period first, optionally for one period and status."""
    return _select_invoices(
        conn, tenant_id=tenant_id, period=period, status=status, with_lines=with_lines
    )


def _select_invoices(
    conn: sa.Connection,
    *,
    invoice_ids: Sequence[int] | None = None,
    tenant_id: str | None = None,
    period: BillingPeriod | None = None,
    status: str | None = None,
    with_lines: bool = False,
) -> list[InvoiceView]:
    rows = conn.execute(
        sql("invoicing/select_invoices"),
        {
            "invoice_ids": list(invoice_ids) if invoice_ids is not None else None,
            "tenant_id": tenant_id,
            "period_start": period.start if period else None,
            "status": status,
        },
    ).mappings()
    heads = [dict(r) for r in rows]
    # NOTE: amounts are stored NUMERIC(24, 6) but were rounded to the minor unit when
    # written; they are shown at the currency's scale ("40.00", "1050", "4.840").
    scale = {h["id"]: quantum(h["currency"]) for h in heads}
    lines: dict[int, list[InvoiceLineView]] = defaultdict(list)
    if with_lines and heads:
        for r in conn.execute(
            sql("invoicing/select_invoice_lines"), {"invoice_ids": [h["id"] for h in heads]}
        ).mappings():
            fields = dict(r)
            invoice_id = fields.pop("invoice_id")
            fields["amount"] = fields["amount"].quantize(scale[invoice_id])
            lines[invoice_id].append(InvoiceLineView(**fields))
    out: list[InvoiceView] = []
    for h in heads:
        h.pop("run_id", None)
        h["total"] = h["total"].quantize(scale[h["id"]])
        out.append(InvoiceView(**h, lines=tuple(lines[h["id"]]) if with_lines else None))
    return out


def total_after_credits(total: Decimal, lines: Sequence[InvoiceLineView]) -> Decimal:
    """A draft's or preview's total once its would-apply credit lines (negative, not in
    `total`: contract 5b, nothing is reserved) are applied."""
    return total + sum(
        (li.amount for li in lines if li.kind == "credit" and li.breakdown.get("would_apply")),
        Decimal(0),
    )


@dataclass(frozen=True)
class InvoicePreview:
    """The invoice as the run would write it now (contract 5.1): nothing is stored.

    `status` is "preview"; there is no id or number. `closed_invoice_id` names the
    tenant's closed invoice of the period when there is one (the run would then write a
    correction against it, shown in `correction`).
    """

    tenant_id: str
    period_start: dt.date
    period_end: dt.date
    currency: str
    total: Decimal
    lines: tuple[InvoiceLineView, ...]
    as_of: dt.datetime
    closed_invoice_id: int | None = None
    correction: InvoicePreview | None = None
    kind: str = "invoice"
    status: str = "preview"
    id: None = None
    number: None = None

    @property
    def period(self) -> str:
        return f"{self.period_start:%Y-%m}"


def line_views(draft: DraftInvoice) -> tuple[InvoiceLineView, ...]:
    """A priced invoice's lines exactly as they read back once stored.

    NOTE: quantities at the 6 decimals of NUMERIC(38, 6), amounts at the currency's
    scale, the breakdown through JSON: so a preview compares equal to the stored draft.
    """
    scale = quantum(draft.currency)
    out = []
    for li in draft.lines:
        out.append(
            InvoiceLineView(
                line_no=li.line_no,
                kind=li.kind,  # type: ignore[arg-type]
                subscription_id=li.subscription_id,
                plan_code=li.plan_code,
                metric=li.metric,
                description=li.description,
                window_start=li.window_start,
                window_end=li.window_end,
                quantity=li.quantity.quantize(QUANTITY_QUANTUM),
                included=li.included.quantize(QUANTITY_QUANTUM),
                billable_quantity=li.billable_quantity.quantize(QUANTITY_QUANTUM),
                pricing_model=li.pricing_model,
                amount=li.amount.quantize(scale),
                breakdown=orjson.loads(orjson.dumps(li.breakdown)),
                group=li.group,
            )
        )
    return tuple(out)
