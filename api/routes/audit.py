"""The audit log (global billing.read keys only): who changed what, before and after."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth import READ, Principal, require_scope
from api.state import ApiState, api_state
from models.identifiers import TENANT_ID_PATTERN
from services.audit import audit_entries


class AuditEntryOut(BaseModel):
    id: int
    at: dt.datetime
    key_id: int | None
    key_name: str
    action: str = Field(description="<object>.<verb>, e.g. overrides.replace")
    tenant_id: str | None
    object_type: str
    object_id: str | None
    before: Any = Field(description="The object (or set) before the change; null = none")
    after: Any = Field(description="The object (or set) after the change; null = none")


router = APIRouter(prefix="/api/billing", tags=["audit"])

# NOTE: dates bounded to years 1..9998 by pydantic and this cap: an edge-of-calendar
# `since` (0001-01-01) is a plain "everything", not an overflow.
MAX_ENTRIES = 1000


@router.get("/audit", response_model=list[AuditEntryOut])
def list_audit(
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
    tenant_id: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN)] = None,
    since: Annotated[
        dt.datetime | None, Query(description="Entries at or after (ISO 8601 with offset)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES)] = MAX_ENTRIES,
) -> list[AuditEntryOut]:
    """Changes made through the API and the key CLI, oldest first (a tenant key: 403, the
    log names other tenants' keys and objects)."""
    principal.require_global()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    with state.engine.connect() as conn:
        entries = audit_entries(conn, tenant_id=tenant_id, since=since, limit=limit)
    return [AuditEntryOut.model_validate(e, from_attributes=True) for e in entries]
