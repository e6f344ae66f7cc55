"""Invoice endpoints (contract 5, 5.1, 5.3, 6): generate, preview, list, read, documents,
close and void.

Scopes and tenants: reads need billing.read and a tenant key reads only its own tenant
(403 on another tenant's path; by id, another tenant's invoice answers 404 like a missing
one). Generating, closing and voiding change what a customer is billed: they need
billing.write on a global key; a tenant-restricted key gets 403 even for its own tenant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import READ, WRITE, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.identifiers import TENANT_ID_PATTERN
from models.period import BillingPeriod
from services import invoicing
from services.audit import record_change
from services.invoicing.documents import render
from tallyflow.core.clock import utc_now, utc_today
from tallyflow.core.errors import NotFound

router = APIRouter(prefix="/api/billing", tags=["invoices"])

InvoiceIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The invoice id")]
PERIOD_PATTERN = r"^\d{4}-\d{2}$"


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=PERIOD_PATTERN, description="Billing period, YYYY-MM (UTC)")
    tenant_ids: list[Annotated[str, Field(pattern=TENANT_ID_PATTERN)]] | None = Field(
        default=None, description="Only these tenants (default: all; a tenant key: its own)"
    )


class GenerateResponse(BaseModel):
    generated: int
    skipped: int
    invoice_ids: list[int]
    correction_ids: list[int] = Field(
        description="Draft corrections (adjustments, credit notes) of closed invoices"
    )
    skipped_tenants: dict[str, str] = Field(description="tenant -> reason it was skipped")


class InvoiceOut(BaseModel):
    id: int | None = Field(description="null on a preview")
    tenant_id: str
    kind: Literal["invoice", "adjustment", "credit_note"]
    corrects_invoice_id: int | None = Field(description="The closed invoice a correction fixes")
    period: str = Field(description="YYYY-MM")
    period_start: dt.date
    period_end: dt.date
    currency: str
    status: Literal["draft", "closed", "void", "preview"]
    number: str | None
    total: Decimal = Field(
        description="Sum of the rounded line amounts (decimal string), would-apply credit"
        " lines excluded"
    )
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    closed_at: dt.datetime | None
    voided_at: dt.datetime | None
    as_of: dt.datetime | None = Field(default=None, description="Previews: priced at")
    closed_invoice_id: int | None = Field(
        default=None, description="Previews: the period's closed invoice, if any"
    )
    correction: InvoiceOut | None = Field(
        default=None, description="Previews of a closed period: the correction a run would write"
    )
    lines: list[invoicing.InvoiceLineView] | None = Field(
        default=None, description="Present on the single-invoice endpoints and previews"
    )
    total_after_credits: Decimal | None = Field(
        default=None,
        description=(
            "Drafts (single-invoice endpoint) and previews: the total once the would-apply"
            " credit lines are applied (they are not in `total`: nothing is reserved)"
        ),
    )

    @classmethod
    def of(cls, view: invoicing.InvoiceView | invoicing.InvoicePreview) -> InvoiceOut:
        if isinstance(view, invoicing.InvoicePreview):
            return cls(
                id=None,
                tenant_id=view.tenant_id,
                kind=view.kind,  # type: ignore[arg-type]
                corrects_invoice_id=view.closed_invoice_id if view.kind != "invoice" else None,
                period=view.period,
                period_start=view.period_start,
                period_end=view.period_end,
                currency=view.currency,
                status="preview",
                number=None,
                total=view.total,
                created_at=None,
                updated_at=None,
                closed_at=None,
                voided_at=None,
                as_of=view.as_of,
                closed_invoice_id=view.closed_invoice_id,
                correction=cls.of(view.correction) if view.correction else None,
                lines=list(view.lines),
                total_after_credits=invoicing.total_after_credits(view.total, view.lines),
            )
        return cls(
            id=view.id,
            tenant_id=view.tenant_id,
            kind=view.kind,  # type: ignore[arg-type]
            corrects_invoice_id=view.corrects_invoice_id,
            period=view.period,
            period_start=view.period_start,
            period_end=view.period_end,
            currency=view.currency,
            status=view.status,  # type: ignore[arg-type]
            number=view.number,
            total=view.total,
            created_at=view.created_at,
            updated_at=view.updated_at,
            closed_at=view.closed_at,
            voided_at=view.voided_at,
            lines=None if view.lines is None else list(view.lines),
            total_after_credits=(
                invoicing.total_after_credits(view.total, view.lines)
                if view.status == "draft" and view.lines is not None
                else None
            ),
        )


@router.post("/invoices:generate", response_model=GenerateResponse)
def generate_invoices(
    request: GenerateRequest,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> GenerateResponse:
    """Create or refresh the period's drafts, and the corrections of its closed invoices.

    Global keys only (a tenant's key cannot re-rate its own bill). One REPEATABLE READ
    transaction that waits for a running ingest or backfill (see invoice_run_transaction).
    """
    principal.require_global()
    period = BillingPeriod.parse(request.period)
    tenant_ids = request.tenant_ids
    with invoicing.invoice_run_transaction(state.engine, [period]) as conn:
        result = invoicing.generate_invoices(conn, period, tenant_ids=tenant_ids)
        record_change(
            conn,
            principal,
            "invoices.generate",
            tenant_id=None,
            obj=("invoice_run", None),
            before=None,
            after={
                "period": request.period,
                "tenant_ids": tenant_ids,
                "generated": result.generated,
                "skipped": result.skipped,
                "invoice_ids": result.invoice_ids,
            },
        )
    return GenerateResponse(
        generated=result.generated,
        skipped=result.skipped,
        invoice_ids=result.invoice_ids,
        correction_ids=result.correction_ids,
        skipped_tenants=dict(result.skipped_tenants),
    )


@router.get("/tenants/{tenant_id}/invoices:preview", response_model=InvoiceOut)
def preview_invoice(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
    period: Annotated[
        str | None, Query(pattern=PERIOD_PATTERN, description="YYYY-MM (default: current)")
    ] = None,
) -> InvoiceOut:
    """The invoice as the run would write it now (status "preview", no id); nothing is written.

    404 when the tenant has no subscription in the period.
    """
    principal.check_tenant(tenant_id)
    now = utc_now()
    billing_period = BillingPeriod.parse(period) if period else BillingPeriod.of(now.date())
    with state.engine.connect() as conn:
        conn = conn.execution_options(postgresql_readonly=True)
        view = invoicing.preview_invoice(conn, tenant_id, billing_period, now=now)
        conn.rollback()
    return InvoiceOut.of(view)


@router.get("/tenants/{tenant_id}/invoices", response_model=list[InvoiceOut])
def list_tenant_invoices(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")] = None,
    status: Annotated[Literal["draft", "closed", "void"] | None, Query()] = None,
) -> list[InvoiceOut]:
    """The tenant's invoices, newest period first (without lines)."""
    principal.check_tenant(tenant_id)
    billing_period = BillingPeriod.parse(period) if period else None
    with state.engine.connect() as conn:
        views = invoicing.list_invoices(conn, tenant_id, period=billing_period, status=status)
    return [InvoiceOut.of(v) for v in views]


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
def get_invoice(
    invoice_id: InvoiceIdPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> InvoiceOut:
    """One invoice with its lines; 404 if there is none."""
    with state.engine.connect() as conn:
        view = invoicing.get_invoice(conn, invoice_id)
        _check_own_invoice(principal, invoice_id, view.tenant_id)
        # NOTE (contract 5b): a draft shows the credit lines closing now would add (marked
        # would_apply, not reserved); the close applies what is left then.
        out = InvoiceOut.of(invoicing.with_credit_lines(conn, view, on=utc_today()))
    return out


_DOCUMENT_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


def _document(state: ApiState, principal: Principal, invoice_id: int, fmt: str) -> Response:
    with state.engine.connect() as conn:
        view = invoicing.get_invoice(conn, invoice_id)
        _check_own_invoice(principal, invoice_id, view.tenant_id)
        view, corrects = invoicing.document_view(conn, view, on=utc_today())
    name = view.number or f"draft-{view.id}"
    return Response(
        content=render(view, state.settings, fmt, corrects_number=corrects),
        media_type=_DOCUMENT_TYPES[fmt],
        headers={"Content-Disposition": f'inline; filename="{name}.{fmt}"'},
    )


@router.get(
    "/invoices/{invoice_id}/document.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The PDF document"}},
)
def invoice_document_pdf(
    invoice_id: InvoiceIdPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> Response:
    """The invoice's document as PDF (searchable text); a draft shows DRAFT as its number."""
    return _document(state, principal, invoice_id, "pdf")


@router.get(
    "/invoices/{invoice_id}/document.html",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "The HTML document"}},
)
def invoice_document_html(
    invoice_id: InvoiceIdPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> Response:
    """The invoice's document as one self-contained HTML page."""
    return _document(state, principal, invoice_id, "html")


def _check_own_invoice(principal: Principal, invoice_id: int, tenant_id: str) -> None:
    """Another tenant's invoice answers exactly like a missing one.

    NOTE: ids are sequential; a 403 here would tell a tenant key which ids exist (and how
    many invoices others have). Paths naming a tenant answer 403 instead: that depends on
    the key and the path only, never on data.
    """
    if principal.tenant_id is not None and principal.tenant_id != tenant_id:
        raise NotFound(f"invoice {invoice_id} not found", code="invoice_not_found")


def _transition(
    state: ApiState,
    principal: Principal,
    invoice_id: int,
    change: Callable[[sa.Connection, int], invoicing.InvoiceView],
    action: str,
) -> InvoiceOut:
    """Check ownership, then apply a lifecycle change and audit it, in one transaction."""
    with state.engine.begin() as conn:
        before = invoicing.get_invoice(conn, invoice_id)
        _check_own_invoice(principal, invoice_id, before.tenant_id)
        after = change(conn, invoice_id)
        record_change(
            conn,
            principal,
            action,
            tenant_id=before.tenant_id,
            obj=("invoice", invoice_id),
            before=_without_lines(before),
            after=_without_lines(after),
        )
        return InvoiceOut.of(after)


def _without_lines(view: invoicing.InvoiceView) -> InvoiceOut:
    """The invoice as audited: its header (lines of a closed invoice are frozen anyway)."""
    return InvoiceOut.of(view).model_copy(update={"lines": None})


@router.post("/invoices/{invoice_id}:close", response_model=InvoiceOut)
def close_invoice(
    invoice_id: InvoiceIdPath,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> InvoiceOut:
    """draft -> closed (next gapless number of its series, closed_at, frozen); 409 otherwise."""
    numbering = invoicing.NumberingRule.of(state.settings)

    def close(conn: sa.Connection, invoice_id: int) -> invoicing.InvoiceView:
        return invoicing.close_invoice(conn, invoice_id, now=utc_now(), numbering=numbering)

    return _transition(state, principal, invoice_id, close, "invoice.close")


@router.post("/invoices/{invoice_id}:void", response_model=InvoiceOut)
def void_invoice(
    invoice_id: InvoiceIdPath,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> InvoiceOut:
    """draft or closed -> void (voided_at); 409 when already void."""
    return _transition(state, principal, invoice_id, invoicing.void_invoice, "invoice.void")
