"""Effective quotas and the quota check (answered from the in-process snapshot)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from models.identifiers import TENANT_ID_PATTERN as TENANT_ID_RE
from pydantic import ValidationError
from starlette.routing import Route
from tallyflow.core.clock import utc_today

from api.auth import READ, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.api import EffectiveQuotaOut, QuotaCheckIn, QuotaCheckOut
from services.quota import tenant_quotas

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


CHECK_PATH = "/api/billing/tenants/{tenant_id}/quotas:check"
_require_read = require_scope(READ)
_tenant_id = re.compile(TENANT_ID_RE)


@router.post("/quotas:check", response_model=QuotaCheckOut)
async def check_quota(
    tenant_id: TenantPath,
    check: QuotaCheckIn,
    principal: Annotated[Principal, Depends(_require_read)],
    request: Request,
) -> Response:
    """May the tenant use `quantity` more of `metric` now? No database round trip: the
    answer comes from the in-process copy of quota_usage (kept current by NOTIFY).

    A check is a read: it needs billing.read and does not record usage.
    """
    return _answer(request, principal, tenant_id, check)


async def fast_check_quota(request: Request) -> Response:
    """The same endpoint as `check_quota`, served without FastAPI's per-request dependency
    solving (about half of a check's CPU time). Same order of checks: the key (401/403),
    then the path and the body (422), then the tenant (403).

    NOTE: `fast_routes()` puts this in front of the documented route, which keeps the
    OpenAPI description; both answer through `_answer`.
    """
    principal = await _require_read(request)
    tenant_id: str = request.path_params["tenant_id"]
    errors: list[dict[str, Any]] = []
    if not _tenant_id.fullmatch(tenant_id):
        errors.append(
            {
                "loc": ("path", "tenant_id"),
                "msg": f"String should match pattern '{TENANT_ID_RE}'",
                "type": "string_pattern_mismatch",
            }
        )
    try:
        check = QuotaCheckIn.model_validate_json(await request.body())
    except ValidationError as exc:
        errors.extend({**e, "loc": ("body", *e["loc"])} for e in exc.errors())
    if errors:
        raise RequestValidationError(errors)
    return _answer(request, principal, tenant_id, check)


def fast_routes() -> list[Route]:
    """Starlette routes to put before the FastAPI ones (see `fast_check_quota`)."""
    return [Route(CHECK_PATH, fast_check_quota, methods=["POST"])]


def _answer(
    request: Request, principal: Principal, tenant_id: str, check: QuotaCheckIn
) -> Response:
    principal.check_tenant(tenant_id)
    state: ApiState = request.app.state.tallyflow
    decision = state.snapshot.check(
        tenant_id=tenant_id, metric=check.metric, requested=check.quantity, today=utc_today()
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
