"""The outbox: events written in the transaction that causes them.

`emit` inserts the event and one pending delivery per live endpoint subscribed to its
type. Both are in the caller's transaction: a rolled-back change leaves no event, a
committed one always has its event (the delivery flow then sends it at least once).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa

from tallyflow.core.sqlfiles import sql

EventType = Literal[
    "usage.threshold_reached", "spend.threshold_reached", "invoice.closed", "invoice.voided"
]
EVENT_TYPES: tuple[str, ...] = (
    "usage.threshold_reached",
    "spend.threshold_reached",
    "invoice.closed",
    "invoice.voided",
)


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_text(value: object) -> str:
    """Canonical JSON (sorted keys, no spaces; Decimal as its exact text)."""
    return json.dumps(value, default=_json_default, sort_keys=True, separators=(",", ":"))


def new_event_id() -> str:
    """A message id (`webhook-id`): `msg_` + 32 hex digits."""
    return f"msg_{uuid.uuid4().hex}"


def emit(
    conn: sa.Connection,
    event_type: EventType,
    *,
    tenant_id: str | None,
    data: Mapping[str, Any],
    now: dt.datetime,
) -> str | None:
    """Write one event and its deliveries in the caller's transaction; returns its id
    (None when no endpoint subscribes to the type)."""
    ids = emit_many(conn, event_type, [(tenant_id, data)], now=now)
    return ids[0] if ids else None


def has_subscribers(conn: sa.Connection, event_type: EventType) -> bool:
    """Whether a live endpoint subscribes to `event_type` (callers may skip building data)."""
    return bool(
        conn.execute(
            sql("webhooks/select_event_has_subscribers"), {"type": event_type}
        ).scalar_one()
    )


def emit_many(
    conn: sa.Connection,
    event_type: EventType,
    events: Sequence[tuple[str | None, Mapping[str, Any]]],
    *,
    now: dt.datetime,
) -> list[str]:
    """`emit` for many events of one type: two statements whatever their number.

    NOTE: an event no live endpoint subscribes to is not recorded (nobody could receive
    it: an endpoint gets the events that happen after it is registered), which keeps the
    bulk closes of an invoice run free of outbox writes when nobody listens.
    """
    if not events or not has_subscribers(conn, event_type):
        return []
    ids = [new_event_id() for _ in events]
    conn.execute(
        sql("webhooks/insert_webhook_event"),
        [
            {
                "id": event_id,
                "type": event_type,
                "tenant_id": tenant_id,
                "data": to_json_text(data),
                "occurred_at": now,
            }
            for event_id, (tenant_id, data) in zip(ids, events, strict=True)
        ],
    )
    conn.execute(sql("webhooks/insert_event_deliveries"), {"event_ids": ids})
    return ids


def message_body(event_type: str, occurred_at: dt.datetime, data: Mapping[str, Any]) -> str:
    """The body of every delivery of an event: {type, timestamp, data}, canonical JSON."""
    return to_json_text({"type": event_type, "timestamp": occurred_at, "data": data})
