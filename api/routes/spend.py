"""A tenant's spend controls (contract 5b): prepaid credits, alerts, the spend cap.

Changing any of them needs billing.write on a global key: a tenant's own key may read
them (billing.read, its own tenant only) and never change them, whatever its scopes (403).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.auth import READ, WRITE, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.period import BillingPeriod
from models.spend import (
    AlertsIn,
    AlertsOut,
    CreditGrantIn,
    CreditGrantOut,
    CreditsOut,
    SpendCapIn,
    SpendCapOut,
)
from services import alerts, credits, spend
from services.audit import record_change
from tallyflow.core.clock import utc_now, utc_today

router = APIRouter(prefix="/api/billing/tenants/{tenant_id}", tags=["spend controls"])


Out = TypeVar("Out", bound=BaseModel)


def _change(
    state: ApiState,
    principal: Principal,
    tenant_id: str,
    action: str,
    obj: tuple[str, int | None],
    change: Callable[[sa.Connection], Out],
    before: Callable[[sa.Connection], object] = lambda _conn: None,
    obj_id: Callable[[Out], int | None] | None = None,
) -> Out:
    """Every change here: a global key only (billing changes; a tenant key gets 403 even
    with billing.write), then the change and its audit entry in one transaction."""
    principal.require_global()
    with state.engine.begin() as conn:
        was = before(conn)
        after = change(conn)
        record_change(
            conn,
            principal,
            action,
            tenant_id=tenant_id,
            obj=(obj[0], obj_id(after) if obj_id else obj[1]),
            before=was,
            after=after,
        )
    return after


@router.post("/credits", status_code=201, response_model=CreditGrantOut)
def create_credit_grant(
    tenant_id: TenantPath,
    request: CreditGrantIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> CreditGrantOut:
    """Grant prepaid credit; it applies when the tenant's invoices close (contract 5b)."""
    return _change(
        state,
        principal,
        tenant_id,
        "credit_grant.create",
        ("credit_grant", None),
        lambda conn: credits.create_grant(conn, tenant_id, request, now=utc_now()),
        obj_id=lambda grant: grant.id,
    )


@router.get("/credits", response_model=CreditsOut)
def list_credits(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> CreditsOut:
    """Balances per currency (grants in effect, not expired) and every grant."""
    principal.check_tenant(tenant_id)
    with state.engine.connect() as conn:
        return credits.tenant_credits(conn, tenant_id, today=utc_today())


@router.put("/alerts", response_model=AlertsOut)
def replace_alerts(
    tenant_id: TenantPath,
    request: AlertsIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> AlertsOut:
    """Replace the tenant's alert set; alerts it repeats keep their triggers."""
    period = BillingPeriod.of(utc_today())
    return _change(
        state,
        principal,
        tenant_id,
        "alerts.replace",
        ("alerts", None),
        lambda conn: alerts.replace_alerts(conn, tenant_id, request.alerts, now=utc_now()),
        before=lambda conn: alerts.list_alerts(conn, tenant_id, period=period),
    )


@router.get("/alerts", response_model=AlertsOut)
def list_alerts(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> AlertsOut:
    """The tenant's alerts, each with `triggered_at` in the current period (or null)."""
    principal.check_tenant(tenant_id)
    with state.engine.connect() as conn:
        return alerts.list_alerts(conn, tenant_id, period=BillingPeriod.of(utc_today()))


@router.put("/spend-cap", response_model=SpendCapOut)
def set_spend_cap(
    tenant_id: TenantPath,
    request: SpendCapIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> SpendCapOut:
    """Set the cap (null removes it): while the period's spend as of the last run is at or
    above it, every quota check of the tenant answers allowed false, spend_cap_reached."""
    result = _change(
        state,
        principal,
        tenant_id,
        "spend_cap.set",
        ("spend_cap", None),
        lambda conn: spend.set_spend_cap(conn, tenant_id, request.amount, now=utc_now()),
        before=lambda conn: spend.spend_cap(conn, tenant_id, today=utc_today()),
    )
    state.reload_quotas([tenant_id])
    return result


@router.get("/spend-cap", response_model=SpendCapOut)
def get_spend_cap(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> SpendCapOut:
    """The cap, the period's spend as of the last run, and whether the cap is reached."""
    principal.check_tenant(tenant_id)
    with state.engine.connect() as conn:
        return spend.spend_cap(conn, tenant_id, today=utc_today())
