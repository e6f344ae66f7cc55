"""The upcoming invoice (contract 5.1): what the run would write now, with nothing written.

The same reads and the same pure pricing as the run (`load_billable_windows`,
`compute_invoice`, `compute_correction`), restricted to one tenant, in a read-only
transaction: a preview equals the draft a run at the same instant writes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from models.period import BillingPeriod
from services.invoicing.catalog import load_billable_windows, load_catalog
from services.invoicing.compute import DraftInvoice, PlanTerms, check_fits, compute_invoice
from services.invoicing.corrections import billed_lines, correction_for
from services.invoicing.views import InvoicePreview, line_views
from tallyflow.core.errors import NotFound
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
    windows = load_billable_windows(conn, params, cached_catalog(conn)).get(tenant_id)
    if not windows:
        raise NotFound(
            f"tenant {tenant_id} has no subscription in {period}", code="no_subscription"
        )
    draft = check_fits(compute_invoice(tenant_id, period, windows))
    closed = None
    for r in conn.execute(sql("invoicing/select_live_invoice_status"), params):
        if r.status == "closed":
            closed = int(r.id)
    correction = None
    if closed is not None:
        found = correction_for(draft, closed, billed_lines(conn, [closed])[closed])
        if found is not None:
            correction = _preview(
                DraftInvoice(tenant_id, found.currency, found.total, found.lines),
                period,
                now,
                kind=found.kind,
            )
    return _preview(draft, period, now, closed_invoice_id=closed, correction=correction)


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
