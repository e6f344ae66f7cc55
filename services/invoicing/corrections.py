"""Corrections after close (contract 5.2): one draft adjustment or credit note per closed invoice.

A closed invoice never changes. When a run re-rates a period whose invoice is closed, the
re-rated invoice is compared with what was billed so far (the closed invoice plus its
closed corrections, `compute_correction`, pure); a difference becomes one draft correction
with delta lines, refreshed in place by later runs and removed when nothing differs.
Late events beyond the grace period thus end up on an adjustment, never on the closed
invoice (finalize closes it like any draft of the period).

NOTE: corrections are rare (a few per period), so they are written row by row; the bulk
COPY path is for the drafts of a whole month.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import orjson
import sqlalchemy as sa

from models.money import quantum
from models.period import BillingPeriod
from services.invoicing.compute import DraftCorrection, DraftInvoice, compute_correction
from services.invoicing.views import InvoiceLineView, get_invoice, line_views
from tallyflow.core.sqlfiles import sql


@dataclass(frozen=True)
class CorrectionSummary:
    invoice_id: int
    corrects_invoice_id: int
    tenant_id: str
    kind: str
    currency: str
    total: Decimal
    changed: bool  # created or refreshed by this run (False: already up to date)


def billed_lines(conn: sa.Connection, invoice_ids: list[int]) -> dict[int, list[InvoiceLineView]]:
    """What was billed so far per closed invoice: its lines and its closed corrections'."""
    out: dict[int, list[InvoiceLineView]] = defaultdict(list)
    if not invoice_ids:
        return out
    for r in conn.execute(
        sql("invoicing/select_billed_lines"), {"invoice_ids": invoice_ids}
    ).mappings():
        fields = dict(r)
        original = int(fields.pop("original_id"))
        out[original].append(InvoiceLineView(line_no=0, breakdown={}, **fields))
    return out


def correction_for(
    rerated: DraftInvoice, closed_invoice_id: int, billed: list[InvoiceLineView]
) -> DraftCorrection | None:
    """The correction a run would write for one closed invoice (None: nothing differs)."""
    return compute_correction(rerated, closed_invoice_id, billed)


def write_corrections(
    conn: sa.Connection,
    period: BillingPeriod,
    closed_invoices: Mapping[str, tuple[int, str]],
    rerated: Mapping[str, DraftInvoice],
    *,
    run_id: uuid.UUID | None,
) -> tuple[list[CorrectionSummary], dict[str, str]]:
    """Create, refresh or remove the draft correction of each closed invoice.

    `closed_invoices`: tenant -> (closed invoice id, its currency); `rerated`: tenant ->
    its invoice priced now (tenants that could not be priced are absent: their draft
    correction, if any, is removed, never left stale for finalize to close).
    Returns the corrections that exist after the run and the tenants whose plan currency
    no longer matches the closed invoice (no correction can be written: reported).
    """
    ids = sorted(invoice_id for invoice_id, _ in closed_invoices.values())
    if not ids:
        return [], {}
    billed = billed_lines(conn, ids)
    drafts = {
        int(r.corrects_invoice_id): r
        for r in conn.execute(sql("invoicing/select_draft_corrections"), {"invoice_ids": ids}).all()
    }
    out: list[CorrectionSummary] = []
    currency_changed: dict[str, str] = {}
    stale: list[int] = []
    for tenant_id in sorted(closed_invoices):
        invoice_id, currency = closed_invoices[tenant_id]
        existing = drafts.get(invoice_id)
        new = rerated.get(tenant_id)
        if new is not None and new.currency != currency:
            currency_changed[tenant_id] = (
                f"tenant {tenant_id}: invoice {invoice_id} was billed in {currency}, the"
                f" plan now prices {period} in {new.currency}: void and regenerate instead"
            )
            new = None
        correction = correction_for(new, invoice_id, billed[invoice_id]) if new else None
        if correction is None:
            if existing is not None:
                stale.append(int(existing.id))
            continue
        out.append(_write_one(conn, correction, existing, run_id))
    if stale:
        conn.execute(sql("invoicing/delete_draft_invoices"), {"invoice_ids": stale})
    return out, currency_changed


def _write_one(
    conn: sa.Connection,
    correction: DraftCorrection,
    existing: sa.Row[tuple[object, ...]] | None,
    run_id: uuid.UUID | None,
) -> CorrectionSummary:
    scale = quantum(correction.currency)
    total = correction.total.quantize(scale)
    draft = DraftInvoice(correction.tenant_id, correction.currency, total, correction.lines)
    views = line_views(draft)
    changed = True
    if existing is not None:
        invoice_id = int(existing.id)
        stored = get_invoice(conn, invoice_id)
        if (stored.kind, stored.total, stored.lines) == (correction.kind, total, views):
            changed = False
        else:
            conn.execute(sql("invoicing/delete_invoice_lines"), {"invoice_id": invoice_id})
            conn.execute(
                sql("invoicing/update_draft_correction"),
                {
                    "invoice_id": invoice_id,
                    "kind": correction.kind,
                    "total": total,
                    "run_id": run_id,
                },
            )
    else:
        invoice_id = int(
            conn.execute(
                sql("invoicing/insert_draft_correction"),
                {
                    "corrects_invoice_id": correction.corrects_invoice_id,
                    "currency": correction.currency,
                    "total": total,
                    "run_id": run_id,
                    "kind": correction.kind,
                },
            ).scalar_one()
        )
    if changed:
        conn.execute(
            sql("invoicing/insert_invoice_line"),
            [
                {
                    **li._asdict(),
                    "invoice_id": invoice_id,
                    "breakdown": orjson.dumps(li.breakdown).decode(),
                    "group": None
                    if li.group is None
                    else orjson.dumps(li.group, option=orjson.OPT_SORT_KEYS).decode(),
                }
                for li in correction.lines
            ],
        )
    return CorrectionSummary(
        invoice_id=invoice_id,
        corrects_invoice_id=correction.corrects_invoice_id,
        tenant_id=correction.tenant_id,
        kind=correction.kind,
        currency=correction.currency,
        total=total,
        changed=changed,
    )
