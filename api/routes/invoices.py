"""Invoice endpoints: generate a period's drafts, list, read, close and void (contract 5, 6)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.auth import READ, WRITE, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.tables import TENANT_ID_RE
from services import credits, invoicing
from services.proration import BillingPeriod
from tallyflow.core.clock import utc_today
from tallyflow.core.errors import NotFound

router = APIRouter(prefix="/api/billing", tags=["invoices"])

InvoiceIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The invoice id")]
PERIOD_PATTERN = r"^\d{4}-\d{2}$"


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=PERIOD_PATTERN, description="Billing period, YYYY-MM (UTC)")
    tenant_ids: list[Annotated[str, Field(pattern=TENANT_ID_RE)]] | None = Field(
        default=None, description="Only these tenants (default: all; a tenant key: its own)"
    )


class GenerateResponse(BaseModel):
    generated: int
    skipped: int
    invoice_ids: list[int]


class WouldApplyCreditOut(BaseModel):
    """A credit line a draft would get if it closed now (nothing is reserved)."""

    kind: Literal["credit"] = "credit"
    grant_id: int
    description: str
    amount: Decimal = Field(description="Negative: what the grant would take off the total")


class InvoiceOut(BaseModel):
    id: int
    tenant_id: str
    period: str = Field(description="YYYY-MM")
    period_start: dt.date
    period_end: dt.date
    currency: str
    status: Literal["draft", "closed", "void"]
    number: str | None
    total: Decimal = Field(description="Sum of the rounded line amounts (decimal string)")
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    voided_at: dt.datetime | None
    lines: list[invoicing.InvoiceLineView] | None = Field(
        default=None, description="Present on the single-invoice endpoints"
    )
    would_apply_credits: list[WouldApplyCreditOut] | None = Field(
        default=None,
        description="Drafts on the single-invoice endpoint: credit lines closing now would add",
    )

    @classmethod
    def of(cls, view: invoicing.InvoiceView) -> InvoiceOut:
        return cls(
            id=view.id,
            tenant_id=view.tenant_id,
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
        )


@router.post("/invoices:generate", response_model=GenerateResponse)
def generate_invoices(
    request: GenerateRequest,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> GenerateResponse:
    """Create or refresh the period's drafts; closed and void invoices are left alone.

    A global key may run every tenant; a tenant key only its own tenant.
    """
    period = BillingPeriod.parse(request.period)
    tenant_ids = request.tenant_ids
    if principal.tenant_id is not None:
        for tenant_id in tenant_ids or []:
            principal.check_tenant(tenant_id)
        tenant_ids = [principal.tenant_id]
    with state.engine.begin() as conn:
        result = invoicing.generate_invoices(conn, period, tenant_ids=tenant_ids)
    return GenerateResponse(
        generated=result.generated, skipped=result.skipped, invoice_ids=result.invoice_ids
    )


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
        out = InvoiceOut.of(view)
        if view.status == "draft":
            # NOTE (contract 5b): shown, not reserved; the close applies what is left then.
            uses = credits.would_apply_credits(conn, view, on=utc_today())
            out.would_apply_credits = [
                WouldApplyCreditOut(
                    grant_id=u.grant_id,
                    description=credits.credit_line_description(u, view.currency),
                    amount=-u.amount,
                )
                for u in uses
            ]
    return out


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
) -> InvoiceOut:
    """Check ownership, then apply a lifecycle change, in one transaction."""
    with state.engine.begin() as conn:
        _check_own_invoice(principal, invoice_id, invoicing.get_invoice(conn, invoice_id).tenant_id)
        return InvoiceOut.of(change(conn, invoice_id))


@router.post("/invoices/{invoice_id}:close", response_model=InvoiceOut)
def close_invoice(
    invoice_id: InvoiceIdPath,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> InvoiceOut:
    """draft -> closed (sequential number, closed_at, frozen); 409 naming the current status."""
    return _transition(state, principal, invoice_id, invoicing.close_invoice)


@router.post("/invoices/{invoice_id}:void", response_model=InvoiceOut)
def void_invoice(
    invoice_id: InvoiceIdPath,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> InvoiceOut:
    """draft or closed -> void (voided_at); 409 when already void."""
    return _transition(state, principal, invoice_id, invoicing.void_invoice)
