"""Webhook endpoints (contract 5b): register, list, retire, and each one's delivery log.

Endpoints receive every tenant's events, so all of this needs a global key: billing.write
to change, billing.read to read; a tenant key gets 403 even with billing.write.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.auth import READ, WRITE, Principal, require_scope
from api.state import ApiState, api_state
from models.spend import WebhookCreatedOut, WebhookDeliveryOut, WebhookIn, WebhookOut
from services.audit import record_change
from services.webhooks import endpoints
from tallyflow.core.clock import utc_now

router = APIRouter(prefix="/api/billing/webhooks", tags=["webhooks"])

EndpointIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The endpoint id")]


@router.post("", status_code=201, response_model=WebhookCreatedOut)
def create_webhook(
    request: WebhookIn,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> WebhookCreatedOut:
    """Register an endpoint; the answer holds its secret, shown this once only.

    422 for a URL that is not http(s), or names a loopback/private address (unless
    TALLYFLOW_WEBHOOK_ALLOW_PRIVATE is true). 503 `secret_key_missing` when the server
    has no TALLYFLOW_SECRET_KEY to store the secret sealed with (a configuration error).
    """
    principal.require_global()
    with state.engine.begin() as conn:
        endpoint, secret = endpoints.create_endpoint(
            conn,
            url=request.url,
            events=request.events,
            allow_private=state.settings.webhook_allow_private,
            now=utc_now(),
            box=state.settings.secret_box(),  # NOTE: unset key: 503 secret_key_missing
        )
        record_change(
            conn,
            principal,
            "webhook.create",
            tenant_id=None,
            obj=("webhook", endpoint.id),
            before=None,
            after=endpoint,  # NOTE: the Endpoint record holds no secret
        )
    return WebhookCreatedOut(**asdict(endpoint) | {"events": list(endpoint.events)}, secret=secret)


@router.get("", response_model=list[WebhookOut])
def list_webhooks(
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> list[WebhookOut]:
    """The live endpoints (never their secrets)."""
    principal.require_global()
    with state.engine.connect() as conn:
        found = endpoints.list_endpoints(conn)
    return [WebhookOut(**asdict(e) | {"events": list(e.events)}) for e in found]


@router.delete("/{endpoint_id}", status_code=204)
def delete_webhook(
    endpoint_id: EndpointIdPath,
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
) -> Response:
    """Retire an endpoint: nothing more is sent to it; its delivery log stays readable."""
    principal.require_global()
    with state.engine.begin() as conn:
        endpoints.delete_endpoint(conn, endpoint_id, now=utc_now())
        record_change(
            conn,
            principal,
            "webhook.delete",
            tenant_id=None,
            obj=("webhook", endpoint_id),
            before=None,
            after=None,
        )
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", response_model=list[WebhookDeliveryOut])
def list_webhook_deliveries(
    endpoint_id: EndpointIdPath,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[WebhookDeliveryOut]:
    """The endpoint's delivery log, newest first: attempts, status, last error."""
    principal.require_global()
    with state.engine.connect() as conn:
        log = endpoints.list_deliveries(conn, endpoint_id, limit=limit)
    return [WebhookDeliveryOut.model_validate(asdict(entry)) for entry in log]
