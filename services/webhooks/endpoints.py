"""Webhook endpoints: register (secret shown once, stored sealed), list, retire; the log.

A secret is shown once, at registration, and stored sealed with TALLYFLOW_SECRET_KEY
(tallyflow/core/secrets.py): signing opens it, nothing else reads it. `endpoint_secret_box`
is the configuration check the API (at startup), `tallyflow serve` and the delivery run
make: endpoints exist -> the key must be set and open every live endpoint's secret.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from services.webhooks.outbox import EVENT_TYPES
from services.webhooks.signing import new_secret
from services.webhooks.urls import Resolver, resolve_host, validate_webhook_url
from tallyflow.core.errors import InvalidInput, NotFound
from tallyflow.core.secrets import SecretBox
from tallyflow.core.sqlfiles import sql


@dataclass(frozen=True)
class Endpoint:
    id: int
    url: str
    events: tuple[str, ...]
    created_at: dt.datetime


@dataclass(frozen=True)
class DeliveryLogEntry:
    """One message to one endpoint: how many attempts, where it stands, the last error."""

    id: int
    event_id: str
    event_type: str
    tenant_id: str | None
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


def check_events(events: Sequence[str]) -> list[str]:
    """The subscribed event types, deduplicated in order; InvalidInput for an unknown one."""
    if not events:
        raise InvalidInput("events: subscribe to at least one event type", code="invalid_events")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"events: unknown event type {unknown[0]!r} (known: {', '.join(EVENT_TYPES)})",
            code="invalid_events",
        )
    return list(dict.fromkeys(events))


def create_endpoint(
    conn: sa.Connection,
    *,
    url: str,
    events: Sequence[str],
    allow_private: bool,
    now: dt.datetime,
    box: SecretBox,
    resolve: Resolver = resolve_host,
) -> tuple[Endpoint, str]:
    """Register an endpoint; returns it with its secret (the only time the secret is shown).

    The database keeps the secret sealed by `box` only."""
    checked_url = validate_webhook_url(url, allow_private=allow_private, resolve=resolve)
    checked_events = check_events(events)
    secret = new_secret()
    row = conn.execute(
        sql("webhooks/insert_webhook_endpoint"),
        {
            "url": checked_url,
            "events": checked_events,
            "secret_ciphertext": box.seal(secret),
            "now": now,
        },
    ).one()
    return Endpoint(row.id, row.url, tuple(row.events), row.created_at), secret


def list_endpoints(conn: sa.Connection) -> list[Endpoint]:
    rows = conn.execute(sql("webhooks/select_webhook_endpoints"), {"endpoint_id": None})
    return [Endpoint(r.id, r.url, tuple(r.events), r.created_at) for r in rows]


def delete_endpoint(conn: sa.Connection, endpoint_id: int, *, now: dt.datetime) -> None:
    """Retire an endpoint: no new deliveries, pending ones cancelled, its log kept."""
    found = conn.execute(
        sql("webhooks/delete_webhook_endpoint"), {"endpoint_id": endpoint_id, "now": now}
    ).first()
    if found is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found", code="webhook_not_found")
    conn.execute(sql("webhooks/cancel_endpoint_deliveries"), {"endpoint_id": endpoint_id})


def list_deliveries(
    conn: sa.Connection, endpoint_id: int, *, limit: int = 100
) -> list[DeliveryLogEntry]:
    """The endpoint's delivery log, newest first (retired endpoints keep theirs)."""
    if (
        conn.execute(sql("webhooks/select_endpoint_exists"), {"endpoint_id": endpoint_id}).first()
        is None
    ):
        raise NotFound(f"webhook endpoint {endpoint_id} not found", code="webhook_not_found")
    rows = conn.execute(
        sql("webhooks/select_endpoint_deliveries"), {"endpoint_id": endpoint_id, "limit": limit}
    ).mappings()
    return [DeliveryLogEntry(**dict(r)) for r in rows]


def endpoint_secret_box(conn: sa.Connection, secret_key: str | None) -> SecretBox | None:
    """The box that opens the live endpoints' secrets; None when there is no live endpoint
    and no key. SecretKeyError (a configuration error: 503 / exit 2) when endpoints exist
    and the key is unset or malformed, or does not open one of their secrets."""
    sealed = conn.execute(sql("webhooks/select_live_endpoint_secrets")).all()
    if not sealed and not secret_key:
        return None
    box = SecretBox.from_setting(secret_key)
    for _endpoint_id, token in sealed:
        box.open(token)
    return box
