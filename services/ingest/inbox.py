"""Pushed usage: validate a batch with the event rules (models.events) and store the
accepted events in ingest_inbox, inside the request's transaction (durable on 202).

Idempotency (contract section 2) at push time: a key (tenant_id, event_id) seen earlier in
the batch or already in the inbox is a `duplicate` when metric, quantity and occurred_at
are identical, a `conflicting_duplicate` rejection otherwise; the first version stands.
NOTE: a key that only a file brought into the lake is not known here; the ingest run that
drains the inbox dedupes against the lake and counts it there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl
import sqlalchemy as sa

from models.events import (
    FIELDS,
    MICROS,
    NUMBER,
    OTHER,
    RAW_EVENT_SCHEMA,
    STRING,
    RejectReason,
    validate_raw_events,
)
from tallyflow.core.sqlfiles import sql


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    event_id: str | None
    reason: str


@dataclass(slots=True)
class PushOutcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InboxEvent:
    index: int
    tenant_id: str
    event_id: str
    metric: str
    quantity: Decimal
    occurred_at: dt.datetime
    properties: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant_id, self.event_id)

    def same_content(self, metric: str, quantity: Decimal, occurred_at: dt.datetime) -> bool:
        return (self.metric, self.quantity, self.occurred_at) == (metric, quantity, occurred_at)


def _field_text(value: Any) -> tuple[str | None, str | None]:
    """(text, type tag) of one JSON value, as models.events expects them."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, STRING
    if isinstance(value, bool):
        return str(value).lower(), OTHER
    if isinstance(value, int | Decimal):
        return str(value), NUMBER
    if isinstance(value, float):  # NaN / Infinity constants
        return repr(value), NUMBER
    return json.dumps(value, default=str), OTHER


def raw_frame(events: Sequence[Any]) -> pl.DataFrame:
    """The RAW_EVENT_SCHEMA frame of parsed JSON values; `row` is the index in the batch.

    JSON numbers must have been parsed with `parse_float=Decimal`, so their text is exact.
    """
    columns: dict[str, list[Any]] = {name: [] for name in RAW_EVENT_SCHEMA.names()}
    for index, event in enumerate(events):
        is_object = isinstance(event, dict)
        columns["row"].append(index)
        columns["is_object"].append(is_object)
        for name in FIELDS:
            value = event.get(name) if is_object else None
            text: str | None
            tag: str | None
            if name == "properties" and isinstance(value, dict):
                text, tag = json.dumps(value, default=float), "object"
            else:
                text, tag = _field_text(value)
            columns[name].append(text)
            columns[f"{name}_type"].append(tag)
    return pl.DataFrame(columns, schema=RAW_EVENT_SCHEMA)


def warm_up() -> None:
    """Validate one sample event: the first validation in a process costs about a second
    (Pandera and Polars set-up); the API does it at startup, not in a client's request."""
    sample = {
        "event_id": "warm-up",
        "tenant_id": "warm-up",
        "metric": "warm_up",
        "quantity": "1",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    validate_raw_events(raw_frame([sample, "not an object"]), dt.datetime.now(dt.UTC))


def push_events(conn: sa.Connection, events: Sequence[Any], *, now: dt.datetime) -> PushOutcome:
    """Validate and store a batch; returns the counts for the 202 answer."""
    outcome = PushOutcome()
    raw = raw_frame(events)
    result = validate_raw_events(raw, now)
    for rejected in result.rejected.select("row", "event_id", "reason").iter_rows():
        outcome.rejected.append(Rejection(rejected[0], rejected[1], rejected[2]))

    first: dict[tuple[str, str], InboxEvent] = {}
    for row in result.accepted.sort("row").iter_rows(named=True):
        event = InboxEvent(
            index=row["row"],
            tenant_id=row["tenant_id"],
            event_id=row["event_id"],
            metric=row["metric"],
            quantity=Decimal(row["quantity_micros"]) / MICROS,
            occurred_at=row["occurred_at"],
            properties=row["properties"],
        )
        earlier = first.get(event.key)
        if earlier is None:
            first[event.key] = event
        elif earlier.same_content(event.metric, event.quantity, event.occurred_at):
            outcome.duplicates += 1
        else:
            outcome.rejected.append(
                Rejection(event.index, event.event_id, RejectReason.CONFLICTING_DUPLICATE.value)
            )
    _store(conn, list(first.values()), outcome)
    outcome.rejected.sort(key=lambda r: r.index)
    return outcome


def _store(conn: sa.Connection, events: list[InboxEvent], outcome: PushOutcome) -> None:
    """Insert new keys; tell duplicates from conflicting duplicates for keys already stored."""
    if not events:
        return
    inserted = {
        (r.tenant_id, r.event_id)
        for r in conn.execute(
            sql("ingest/insert_inbox_events"),
            {
                "tenant_ids": [e.tenant_id for e in events],
                "event_ids": [e.event_id for e in events],
                "metrics": [e.metric for e in events],
                "quantities": [e.quantity for e in events],
                "occurred_ats": [e.occurred_at for e in events],
                "properties": [e.properties for e in events],
            },
        )
    }
    outcome.accepted += len(inserted)
    existing = [e for e in events if e.key not in inserted]
    if not existing:
        return
    # NOTE: a new statement sees rows that a concurrent push committed meanwhile.
    stored = {
        (r.tenant_id, r.event_id): r
        for r in conn.execute(
            sql("ingest/select_inbox_events_by_key"),
            {
                "tenant_ids": [e.tenant_id for e in existing],
                "event_ids": [e.event_id for e in existing],
            },
        )
    }
    for event in existing:
        row = stored[event.key]
        if event.same_content(row.metric, row.quantity, row.occurred_at):
            outcome.duplicates += 1
        else:
            outcome.rejected.append(
                Rejection(event.index, event.event_id, RejectReason.CONFLICTING_DUPLICATE.value)
            )
