"""Pushed usage: validate a batch with the event rules (models.events) and store the
accepted events in ingest_inbox, inside the request's transaction (durable on 202).

Idempotency (contract section 2) at push time: a key (tenant_id, event_id) seen earlier in
the batch or already in the inbox is a `duplicate` when metric, quantity and occurred_at
are identical, a `conflicting_duplicate` rejection otherwise; the first version stands
(services.ingest.dedupe.split_repeats, the rule's one home, shared with the file ingest).
An event dated more than TALLYFLOW_MAX_EVENT_AGE_DAYS before now is `event_too_old`
(docs/EVENTS.md says why).
NOTE: a key that only a file brought into the lake is not known here; the ingest run that
drains the inbox dedupes against the lake and counts it there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import polars as pl
import sqlalchemy as sa

from models.events import (
    FIELDS,
    MICROS,
    NUMBER,
    OBJECT,
    OTHER,
    RAW_EVENT_SCHEMA,
    STRING,
    RejectReason,
    validate_raw_events,
)
from services.ingest.dedupe import KEY, VERSION_SCHEMA, DedupeResult, split_repeats
from tallyflow.core.clock import utc_now
from tallyflow.core.sqlfiles import sql

EVENT_TOO_OLD: Final = "event_too_old"
DEFAULT_MAX_EVENT_AGE_DAYS: Final = 400


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


def exact_json(value: Any) -> str:
    """JSON text of parsed JSON values, Decimal numbers as their exact text (json.dumps
    with default=float would round them to 15-17 digits). Other values as json.dumps."""
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(float(value))
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {exact_json(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(exact_json(v) for v in value) + "]"
    return json.dumps(value)


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
                text, tag = exact_json(value), OBJECT
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
    validate_raw_events(raw_frame([sample, "not an object"]), utc_now())


def push_events(
    conn: sa.Connection,
    events: Sequence[Any],
    *,
    now: dt.datetime,
    max_age_days: int = DEFAULT_MAX_EVENT_AGE_DAYS,
) -> PushOutcome:
    """Validate and store a batch; returns the counts for the 202 answer. An event older
    than `max_age_days` (TALLYFLOW_MAX_EVENT_AGE_DAYS) is rejected as `event_too_old`."""
    outcome = PushOutcome()
    raw = raw_frame(events)
    result = validate_raw_events(raw, now)
    for rejected in result.rejected.select("row", "event_id", "reason").iter_rows():
        outcome.rejected.append(Rejection(rejected[0], rejected[1], rejected[2]))
    accepted = result.accepted.sort("row")
    too_old = pl.col("occurred_at") < now - dt.timedelta(days=max_age_days)
    for row, event_id in accepted.filter(too_old).select("row", "event_id").iter_rows():
        outcome.rejected.append(Rejection(row, event_id, EVENT_TOO_OLD))
    # the batch against itself (dedupe.split_repeats: the one home of the rule)
    within = split_repeats(accepted.filter(~too_old))
    _count(outcome, within)
    _store(conn, within.new, outcome)
    outcome.rejected.sort(key=lambda r: r.index)
    return outcome


def _count(outcome: PushOutcome, result: DedupeResult) -> None:
    outcome.duplicates += result.duplicates.height
    for row, event_id in result.conflicts.select("row", "event_id").iter_rows():
        outcome.rejected.append(Rejection(row, event_id, RejectReason.CONFLICTING_DUPLICATE.value))


def _store(conn: sa.Connection, new: pl.DataFrame, outcome: PushOutcome) -> None:
    """Insert new keys; the keys already stored are split against their stored versions."""
    if new.height == 0:
        return
    inserted = {
        (r.tenant_id, r.event_id)
        for r in conn.execute(
            sql("ingest/insert_inbox_events"),
            {
                "tenant_ids": new.get_column("tenant_id").to_list(),
                "event_ids": new.get_column("event_id").to_list(),
                "metrics": new.get_column("metric").to_list(),
                "quantities": [
                    Decimal(q) / MICROS for q in new.get_column("quantity_micros").to_list()
                ],
                "occurred_ats": new.get_column("occurred_at").to_list(),
                "properties": new.get_column("properties").to_list(),
            },
        )
    }
    outcome.accepted += len(inserted)
    if len(inserted) == new.height:
        return
    mask = [k not in inserted for k in new.select(KEY).iter_rows()]
    existing = new.filter(pl.Series(mask, dtype=pl.Boolean))
    # NOTE: a new statement sees rows that a concurrent push committed meanwhile.
    stored = [
        {
            "tenant_id": r.tenant_id,
            "event_id": r.event_id,
            "metric": r.metric,
            "quantity_micros": r.quantity_micros,
            "occurred_at": r.occurred_at.astimezone(dt.UTC),
        }
        for r in conn.execute(
            sql("ingest/select_inbox_events_by_key"),
            {
                "tenant_ids": existing.get_column("tenant_id").to_list(),
                "event_ids": existing.get_column("event_id").to_list(),
            },
        )
    ]
    again = split_repeats(existing, pl.DataFrame(stored, schema=VERSION_SCHEMA))
    _count(outcome, again)
    if again.new.height:  # a key neither inserted nor stored: cannot happen under the constraint
        raise AssertionError(f"{again.new.height} pushed events neither stored nor found")
