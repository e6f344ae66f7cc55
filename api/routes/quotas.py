"""Effective quotas and the quota check (answered from the in-process snapshot)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from api.auth import READ, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.api import EffectiveQuotaOut, QuotaCheckIn, QuotaCheckOut
from services.quota import tenant_quotas, utc_today

router = APIRouter(prefix="/api/billing/tenants/{tenant_id}", tags=["quotas"])


@router.get("/quotas", response_model=list[EffectiveQuotaOut])
def effective_quotas(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> list[EffectiveQuotaOut]:
    """The tenant's quotas for the current period with used, remaining and as_of."""
    principal.check_tenant(tenant_id)
    with state.engine.connect() as conn:
        rows = tenant_quotas(conn, tenant_id=tenant_id, today=utc_today())
    return [
        EffectiveQuotaOut(
            metric=r.metric,
            aggregation=r.aggregation,
            included=r.included,
            limit=r.limit,
            enforcement=r.enforcement,
            source=r.source,
            plan_code=r.plan_code,
            used=r.used,
            remaining=r.remaining,
            period_start=r.period_start,
            period_end=r.period_end,
            as_of=r.as_of,
        )
        for r in rows
    ]


@router.post("/quotas:check", response_model=QuotaCheckOut)
async def check_quota(
    tenant_id: TenantPath,
    request: QuotaCheckIn,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> Response:
    """May the tenant use `quantity` more of `metric` now? No database round trip: the
    answer comes from the in-process copy of quota_usage (kept current by NOTIFY).

    A check is a read: it needs billing.read and does not record usage.
    """
    principal.check_tenant(tenant_id)
    decision = state.snapshot.check(
        tenant_id=tenant_id, metric=request.metric, requested=request.quantity, today=utc_today()
    )
    body = QuotaCheckOut(
        allowed=decision.allowed,
        reason=decision.reason,  # type: ignore[arg-type]
        metric=decision.metric,
        used=decision.used,
        requested=decision.requested,
        limit=decision.limit,
        remaining=decision.remaining,
        enforcement=decision.enforcement,
        period_start=decision.period_start,
        period_end=decision.period_end,
        as_of=decision.as_of,
    )
    # NOTE: serialised here once, skipping FastAPI's second validation of the response.
    return Response(content=body.model_dump_json(), media_type="application/json")
