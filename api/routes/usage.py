"""Pushed usage (into the inbox) and the usage summary (from usage_daily)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import READ, USAGE, WRITE, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.api import UsageIngestIn, UsageIngestOut, UsageSummaryOut
from services.ingest.inbox import PushOutcome, push_events
from services.poison import without_poison
from services.usage import usage_summary
from tallyflow.core.clock import utc_now
from tallyflow.core.errors import Forbidden, InvalidInput, PayloadTooLarge

router = APIRouter(prefix="/api/billing", tags=["usage"])


def _parse_body(body: bytes) -> Any:
    """JSON with numbers kept exact: floats as Decimal (their text), never binary floats.

    NOTE: NaN and Infinity are not JSON (RFC 8259) and no event field can hold them; nesting
    deeper than the parser's recursion limit (a 20,000-deep array) is refused: both 422
    for the request, never a 500.
    """
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("body is not valid JSON: nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@router.post(
    "/usage:ingest",
    status_code=202,
    response_model=UsageIngestOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": UsageIngestIn.model_json_schema()}},
        }
    },
    responses={413: {"description": "More events than the cap (10,000) or a body too large"}},
)
async def ingest_usage(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(USAGE, WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> JSONResponse:
    """Validate events with the file pipeline's rules and store the accepted ones durably
    (202); they count after the next ingest run. A tenant key may push only its tenant."""
    # NOTE: the body's size is capped before this route runs (api/guard.py, setting
    # ingest_body_cap_bytes: 413 body_too_large); here only the event count is.
    cap = state.settings.max_push_events
    payload = _parse_body(await request.body())
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise InvalidInput('body.events: the body must be {"events": [event, ...]}')
    if len(events) > cap:
        raise PayloadTooLarge(f"{len(events)} events in one request; at most {cap}")
    events = without_poison(events)
    if principal.tenant_id is not None:
        # NOTE: only string tenant ids name a tenant; any other value is a row reason below
        named = (e.get("tenant_id") for e in events if isinstance(e, dict))
        others = {t for t in named if isinstance(t, str)} - {principal.tenant_id}
        if others:
            raise Forbidden(
                f"this key is restricted to tenant {principal.tenant_id!r}", code="wrong_tenant"
            )
    outcome = await _store(state, events)
    body = UsageIngestOut.model_validate(
        {
            "accepted": outcome.accepted,
            "duplicates": outcome.duplicates,
            "rejected": [
                {"index": r.index, "event_id": r.event_id, "reason": r.reason}
                for r in outcome.rejected
            ],
        }
    )
    return JSONResponse(status_code=202, content=body.model_dump(mode="json"))


async def _store(state: ApiState, events: list[Any]) -> PushOutcome:
    def run() -> PushOutcome:
        with state.engine.begin() as conn:
            return push_events(
                conn, events, now=utc_now(), max_age_days=state.settings.max_event_age_days
            )

    return await run_in_threadpool(run)


@router.get("/tenants/{tenant_id}/usage/summary", response_model=UsageSummaryOut)
def summary(
    tenant_id: TenantPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
    start: Annotated[dt.date | None, Query(description="First day (inclusive)")] = None,
    end: Annotated[dt.date | None, Query(description="Last day (exclusive)")] = None,
) -> UsageSummaryOut:
    """Usage per metric with daily rows for [start, end) (default: the current period)."""
    principal.check_tenant(tenant_id)
    with state.engine.connect() as conn:
        return usage_summary(conn, tenant_id, start=start, end=end)
