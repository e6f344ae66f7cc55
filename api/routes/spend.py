"""A tenant's spend controls (contract 5b): prepaid credits, alerts, the spend cap.

Changing any of them needs billing.write on a global key: a tenant's own key may read
them (billing.read, its own tenant only) and never change them, whatever its scopes (403).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

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


def _may_change(principal: Principal, tenant_id: str) -> None:
    """Changes to spend controls are billing changes: global keys only.

    INTEGRATION (trust): once keys carry `usage.write`, billing.write is only ever on a
    global key; this check stays as the second guard.
    """
    principal.require_global()


@router.post("/credits", status_code=201, response_model=CreditGrantOut)
def create_credit_grant(
    tenant_id: TenantPath,
    request: CreditGrantIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> CreditGrantOut:
    """Grant prepaid credit; it applies when the tenant's invoices close (contract 5b)."""
    _may_change(principal, tenant_id)
    with state.engine.begin() as conn:
        grant = credits.create_grant(conn, tenant_id, request, now=utc_now())
        record_change(
            conn,
            principal,
            "credit_grant.create",
            tenant_id=tenant_id,
            obj=("credit_grant", grant.id),
            before=None,
            after=grant,
        )
    return grant


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
    _may_change(principal, tenant_id)
    with state.engine.begin() as conn:
        period = BillingPeriod.of(utc_today())
        before = alerts.list_alerts(conn, tenant_id, period=period)
        after = alerts.replace_alerts(conn, tenant_id, request.alerts, now=utc_now())
        record_change(
            conn,
            principal,
            "alerts.replace",
            tenant_id=tenant_id,
            obj=("alerts", None),
            before=before,
            after=after,
        )
        return after


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
    _may_change(principal, tenant_id)
    with state.engine.begin() as conn:
        before = spend.spend_cap(conn, tenant_id, today=utc_today())
        result = spend.set_spend_cap(conn, tenant_id, request.amount, now=utc_now())
        record_change(
            conn,
            principal,
            "spend_cap.set",
            tenant_id=tenant_id,
            obj=("spend_cap", None),
            before=before,
            after=result,
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
