"""Plans: create (global write keys) and list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import READ, WRITE, Principal, require_scope
from api.state import ApiState, api_state
from models.api import PlanIn, PlanOut
from services import catalog
from services.audit import record_change

router = APIRouter(prefix="/api/billing", tags=["plans"])


@router.post("/plans", status_code=201, response_model=PlanOut)
def create_plan(
    plan: PlanIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> PlanOut:
    """Create a plan with its quotas and pricing; 409 when the code exists."""
    principal.require_global()
    with state.engine.begin() as conn:
        created = catalog.create_plan(conn, plan)
        record_change(
            conn,
            principal,
            "plan.create",
            tenant_id=None,
            obj=("plan", created.id),
            before=None,
            after=created,
        )
    return created


@router.get("/plans", response_model=list[PlanOut])
def list_plans(
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> list[PlanOut]:
    """Every plan with its quotas (plans are a catalog, readable by tenant keys too)."""
    with state.engine.connect() as conn:
        return catalog.list_plans(conn)
