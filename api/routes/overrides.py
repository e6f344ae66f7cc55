"""A tenant's quota overrides, replaced as a set."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import READ, WRITE, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.api import OverrideOut, OverridesIn
from services import catalog
from services.audit import record_change

router = APIRouter(prefix="/api/billing/tenants/{tenant_id}", tags=["quotas"])


@router.put("/quotas/overrides", response_model=list[OverrideOut])
def replace_overrides(
    tenant_id: TenantPath,
    request: OverridesIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> list[OverrideOut]:
    """Replace the tenant's whole set of overrides (an empty list removes them all)."""
    principal.check_tenant(tenant_id)
    with state.engine.begin() as conn:
        before = catalog.list_overrides(conn, tenant_id)
        stored = catalog.replace_overrides(conn, tenant_id, request.overrides)
        # NOTE: the whole set before and after: the audit rows are the overrides' history.
        record_change(
            conn,
            principal,
            "overrides.replace",
            tenant_id=tenant_id,
            obj=("quota_overrides", None),
            before=before,
            after=stored,
        )
    state.reload_quotas([tenant_id])
    return stored


@router.get("/quotas/overrides", response_model=list[OverrideOut])
def list_overrides(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> list[OverrideOut]:
    principal.check_tenant(tenant_id)
    with state.engine.connect() as conn:
        return catalog.list_overrides(conn, tenant_id)
