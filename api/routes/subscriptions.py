"""A tenant's subscriptions: subscribe (a later start is a plan change) and list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import READ, WRITE, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.api import SubscriptionIn, SubscriptionOut
from services import catalog
from services.audit import record_change

router = APIRouter(prefix="/api/billing/tenants/{tenant_id}", tags=["subscriptions"])


@router.post("/subscriptions", status_code=201, response_model=SubscriptionOut)
def create_subscription(
    tenant_id: TenantPath,
    request: SubscriptionIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> SubscriptionOut:
    """Subscribe the tenant; 404 unknown plan, 409 dates overlapping a subscription or
    starting inside (or before) a period with a closed invoice."""
    principal.check_tenant(tenant_id)
    with state.engine.begin() as conn:
        before = catalog.list_subscriptions(conn, tenant_id)
        created = catalog.create_subscription(
            conn, tenant_id, request, lake_root=state.settings.lake_location.url
        )
        # NOTE: the whole set before and after: a plan change also ends the open one.
        record_change(
            conn,
            principal,
            "subscription.create",
            tenant_id=tenant_id,
            obj=("subscription", created.id),
            before=before,
            after=catalog.list_subscriptions(conn, tenant_id),
        )
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
