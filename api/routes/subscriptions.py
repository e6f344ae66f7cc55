"""A tenant's subscriptions: subscribe (a later start is a plan change) and list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import READ, WRITE, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.api import SubscriptionIn, SubscriptionOut
from services import catalog

router = APIRouter(prefix="/api/billing/tenants/{tenant_id}", tags=["subscriptions"])


@router.post("/subscriptions", status_code=201, response_model=SubscriptionOut)
def create_subscription(
    tenant_id: TenantPath,
    request: SubscriptionIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> SubscriptionOut:
    """Subscribe the tenant; 404 unknown plan, 409 dates overlapping a subscription."""
    principal.check_tenant(tenant_id)
    with state.engine.begin() as conn:
        created = catalog.create_subscription(conn, tenant_id, request)
    # NOTE: the very next quota check in this process sees the change (others get NOTIFY).
    state.reload_quotas([tenant_id])
    return created


@router.get("/subscriptions", response_model=list[SubscriptionOut])
def list_subscriptions(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> list[SubscriptionOut]:
    principal.check_tenant(tenant_id)
    with state.engine.connect() as conn:
        return catalog.list_subscriptions(conn, tenant_id)
