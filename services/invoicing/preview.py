"""The upcoming invoice (contract 5.1): what the run would write now, with nothing written.

The same reads and the same pure pricing as the run (`load_billable_windows`,
`compute_invoice`, `compute_correction`), restricted to one tenant, in a read-only
transaction: a preview equals the draft a run at the same instant writes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import sqlalchemy as sa

from models.period import BillingPeriod
from services import credits
from services.invoicing.catalog import load_billable_windows, load_catalog
from services.invoicing.compute import (
    AmountOutOfRange,
    DraftInvoice,
    MixedCurrencies,
    PlanTerms,
    check_fits,
    compute_invoice,
)
from services.invoicing.corrections import billed_lines, correction_for
from services.invoicing.views import (
    InvoiceLineView,
    InvoicePreview,
    InvoiceView,
    get_invoice,
    line_views,
)
from tallyflow.core.errors import Conflict, NotFound
from tallyflow.core.sqlfiles import sql

# NOTE: the parsed catalog, per database, reused while its fingerprint is unchanged. Plans
# and their quotas are immutable once created (no statement updates or deletes them), so
# the count, the highest id and the latest creation time identify the contents; parsing
# every plan's pricing was a third of a preview's time.
_CATALOGS: dict[str, tuple[tuple[Any, ...], Mapping[int, PlanTerms]]] = {}
_CATALOGS_LOCK = threading.Lock()


def cached_catalog(conn: sa.Connection) -> Mapping[int, PlanTerms]:
    """`load_catalog(conn)`, parsed once per catalog state and database."""
    fingerprint = tuple(conn.execute(sql("invoicing/select_catalog_fingerprint")).one())
    key = conn.engine.url.render_as_string(hide_password=True)
    with _CATALOGS_LOCK:
        found = _CATALOGS.get(key)
    if found is not None and found[0] == fingerprint:
        return found[1]
    catalog = load_catalog(conn)
    with _CATALOGS_LOCK:
        _CATALOGS[key] = (fingerprint, catalog)
    return catalog


def preview_invoice(
    conn: sa.Connection, tenant_id: str, period: BillingPeriod, *, now: dt.datetime
) -> InvoicePreview:
    """The tenant's invoice of `period` priced from current usage; NotFound without subscription.

    When the period's invoice is already closed, the preview is the re-rated invoice and
    `correction` shows the adjustment or credit note a run would write (None if nothing
    differs). Unpriceable invoices raise the run's own errors (mixed_currencies 409,
    amount_out_of_range 409).
    """
    params = {"period_start": period.start, "period_end": period.end, "tenant_ids": [tenant_id]}
    priced = upcoming_invoices(conn, period, [tenant_id]).get(tenant_id)
    if priced is None:
        raise NotFound(
            f"tenant {tenant_id} has no subscription in {period}", code="no_subscription"
        )
    if isinstance(priced, Conflict):
        raise priced
    draft = priced
    closed = None
    for r in conn.execute(sql("invoicing/select_live_invoice_status"), params):
        if r.status == "closed":
            closed = int(r.id)
    on = now.date()
    if closed is None:  # NOTE (contract 5b): the document a close would credit shows it
        return with_credit_lines(conn, _preview(draft, period, now), on=on)
    correction = None
    found = correction_for(draft, closed, billed_lines(conn, [closed])[closed])
    if found is not None:
        correction = with_credit_lines(
            conn,
            _preview(
                DraftInvoice(tenant_id, found.currency, found.total, found.lines),
                period,
                now,
                kind=found.kind,
            ),
            on=on,
        )
    return _preview(draft, period, now, closed_invoice_id=closed, correction=correction)


Shown = TypeVar("Shown", InvoicePreview, InvoiceView)


def with_credit_lines(conn: sa.Connection, invoice: Shown, *, on: dt.date) -> Shown:
    """A preview or a draft with the prepaid credit lines closing it on `on` would add
    (contract 5b), marked would-apply and not in its total; nothing is reserved. The lines
    come from `services.credits.would_apply_lines`, the rule a close applies."""
    if invoice.status not in ("draft", "preview"):
        return invoice
    lines: tuple[InvoiceLineView, ...] = invoice.lines or ()
    added = credits.would_apply_lines(conn, invoice, lines, on=on)
    if not added:
        return invoice
    shown: tuple[InvoiceLineView, ...] = line_views(
        DraftInvoice(invoice.tenant_id, invoice.currency, invoice.total, added)
    )
    return replace(invoice, lines=(*lines, *shown))


def document_view(
    conn: sa.Connection, invoice: InvoiceView, *, on: dt.date
) -> tuple[InvoiceView, str | None]:
    """What an invoice's document shows (contract 5.3): a draft with the credit lines a close
    on `on` would add (as its API view does), and the number of the invoice a correction
    corrects (None if it corrects none, or that one has no number yet)."""
    corrects = (
        get_invoice(conn, invoice.corrects_invoice_id).number
        if invoice.corrects_invoice_id is not None
        else None
    )
    return with_credit_lines(conn, invoice, on=on), corrects


def upcoming_invoices(
    conn: sa.Connection, period: BillingPeriod, tenant_ids: Sequence[str]
) -> dict[str, DraftInvoice | Conflict]:
    """The invoice of `period` each of `tenant_ids` with a subscription in it would get now
    (or why it cannot be priced): what a preview shows, and the spend measure of contract
    5b (services/spend.py), so the two are one computation."""
    params = {
        "period_start": period.start,
        "period_end": period.end,
        "tenant_ids": sorted(set(tenant_ids)),
    }
    out: dict[str, DraftInvoice | Conflict] = {}
    for tenant_id, windows in load_billable_windows(conn, params, cached_catalog(conn)).items():
        try:
            out[tenant_id] = check_fits(compute_invoice(tenant_id, period, windows))
        except (MixedCurrencies, AmountOutOfRange) as exc:
            out[tenant_id] = exc
    return out


def _preview(
    draft: DraftInvoice,
    period: BillingPeriod,
    now: dt.datetime,
    *,
    kind: str = "invoice",
    closed_invoice_id: int | None = None,
    correction: InvoicePreview | None = None,
) -> InvoicePreview:
    from models.money import quantum

    return InvoicePreview(
        tenant_id=draft.tenant_id,
        period_start=period.start,
        period_end=period.end,
        currency=draft.currency,
        total=draft.total.quantize(quantum(draft.currency)),
        lines=line_views(draft),
        as_of=now,
        closed_invoice_id=closed_invoice_id,
        correction=correction,
        kind=kind,
    )
