"""The invoice lifecycle: draft -> closed (numbered, frozen) -> void.

The database itself refuses changes to a closed or void invoice (migrations 0003, 0004),
so this module is not the only guard. Every function runs inside the caller's transaction.

NOTE for hooks that must run when a document is issued (prepaid credits applied at close,
the audit log, `invoice.closed` webhooks): `close_drafts` is the one place every close goes
through (single close, period close, finalize, `generate --close`). It runs inside the
caller's transaction with the drafts locked FOR UPDATE; a hook added between
`select_closable_drafts` and `close_numbered_invoices` commits or rolls back with the close.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from models.period import BillingPeriod
from services.credits import apply_credits_to_drafts
from services.invoicing.numbering import NumberingRule, assign_numbers
from services.invoicing.views import InvoiceView, _select_invoices, get_invoice
from services.webhooks.outbox import EventType, emit_many, has_subscribers
from tallyflow.core.clock import utc_now
from tallyflow.core.errors import Conflict, NotFound
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import sql

DEFAULT_NUMBERING = NumberingRule()


def close_drafts(
    conn: sa.Connection,
    *,
    now: dt.datetime,
    numbering: NumberingRule = DEFAULT_NUMBERING,
    invoice_ids: Sequence[int] | None = None,
    period: BillingPeriod | None = None,
    tenant_ids: Sequence[str] | None = None,
) -> list[int]:
    """Close drafts (by ids, or all of a period, optionally for some tenants); returns their ids.

    Each gets the next gapless number of its series (see services.invoicing.numbering)
    and closed_at = `now` (an injected clock: the caller decides the instant, and its UTC
    year names the numbering year). Drafts are numbered in (tenant, id) order.
    """
    drafts = [
        (int(r.id), str(r.kind))
        for r in conn.execute(
            sql("invoicing/select_closable_drafts"),
            {
                "invoice_ids": list(invoice_ids) if invoice_ids is not None else None,
                "period_start": period.start if period else None,
                "tenant_ids": list(tenant_ids) if tenant_ids is not None else None,
            },
        ).all()
    ]
    if not drafts:
        return []
    # NOTE (contract 5b): prepaid credits apply inside this closing transaction, to invoices
    # and adjustments (never credit notes) while they are still drafts; the grants are
    # locked FOR UPDATE, so a grant is never applied twice or overdrawn (services/credits.py).
    apply_credits_to_drafts(conn, [invoice_id for invoice_id, _ in drafts], now)
    numbers = assign_numbers(conn, drafts, numbering, now=now)
    crash_point("invoices.numbered")
    ids = [invoice_id for invoice_id, _ in drafts]
    closed = conn.execute(
        sql("invoicing/close_numbered_invoices"),
        {"invoice_ids": ids, "numbers": [numbers[i] for i in ids], "now": now},
    ).all()
    if len(closed) != len(ids):  # pragma: no cover - the rows are locked above
        raise Conflict("drafts changed while they were being closed", code="close_raced")
    _emit_invoice_events(conn, "invoice.closed", sorted(ids), now)
    return sorted(ids)


def close_period_invoices(
    conn: sa.Connection,
    period: BillingPeriod,
    *,
    tenant_ids: Sequence[str] | None = None,
    now: dt.datetime | None = None,
    numbering: NumberingRule = DEFAULT_NUMBERING,
) -> list[int]:
    """Close every draft of the period (invoices and corrections); returns their ids."""
    return close_drafts(
        conn, now=now or utc_now(), numbering=numbering, period=period, tenant_ids=tenant_ids
    )


def close_invoice(
    conn: sa.Connection,
    invoice_id: int,
    *,
    now: dt.datetime | None = None,
    numbering: NumberingRule = DEFAULT_NUMBERING,
) -> InvoiceView:
    """draft -> closed: the next gapless number of its series and closed_at; 409 otherwise."""
    status = _lock_status(conn, invoice_id)
    if status != "draft":
        raise Conflict(
            f"invoice {invoice_id} is {status}: only a draft can be closed",
            code="invoice_not_draft",
        )
    close_drafts(conn, now=now or utc_now(), numbering=numbering, invoice_ids=[invoice_id])
    return get_invoice(conn, invoice_id)


def void_invoice(
    conn: sa.Connection, invoice_id: int, *, now: dt.datetime | None = None
) -> InvoiceView:
    """draft or closed -> void (voided_at); 409 when already void.

    A void invoice keeps its number (voiding frees none). Its draft corrections, never
    issued, are deleted with it; closed corrections stay as issued documents.
    """
    status = _lock_status(conn, invoice_id)
    if status == "void":
        raise Conflict(f"invoice {invoice_id} is void already", code="invoice_already_void")
    conn.execute(sql("invoicing/delete_draft_corrections_of"), {"invoice_id": invoice_id})
    moment = now or utc_now()
    conn.execute(sql("invoicing/void_invoice"), {"invoice_id": invoice_id, "now": moment})
    _emit_invoice_events(conn, "invoice.voided", [invoice_id], moment)
    return get_invoice(conn, invoice_id)


def _emit_invoice_events(
    conn: sa.Connection, event_type: EventType, invoice_ids: Sequence[int], now: dt.datetime
) -> None:
    """invoice.closed / invoice.voided into the webhook outbox, in this transaction."""
    if not invoice_ids or not has_subscribers(conn, event_type):
        return
    views = _select_invoices(conn, invoice_ids=invoice_ids)
    emit_many(conn, event_type, [(v.tenant_id, invoice_event_data(v)) for v in views], now=now)


def invoice_event_data(view: InvoiceView) -> dict[str, Any]:
    """The `data` of invoice.closed / invoice.voided."""
    return {
        "invoice_id": view.id,
        "tenant_id": view.tenant_id,
        "number": view.number,
        "status": view.status,
        "period": view.period,
        "period_start": view.period_start,
        "period_end": view.period_end,
        "currency": view.currency,
        "total": view.total,
        "closed_at": view.closed_at,
        "voided_at": view.voided_at,
    }


def _lock_status(conn: sa.Connection, invoice_id: int) -> str:
    row = conn.execute(
        sql("invoicing/select_invoice_for_update"), {"invoice_id": invoice_id}
    ).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found", code="invoice_not_found")
    return str(row.status)
