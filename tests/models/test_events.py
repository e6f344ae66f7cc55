"""The event rules (contract section 2) on small frames: one reason per bad row, and the
good row next to it survives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from models.events import RAW_EVENT_SCHEMA, micros_to_text, validate_raw_events

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "row": 1,
        "is_object": True,
        "event_id": "e-good",
        "event_id_type": "string",
        "tenant_id": "acme",
        "tenant_id_type": "string",
        "metric": "api.calls",
        "metric_type": "string",
        "quantity": "1.5",
        "quantity_type": "number",
        "occurred_at": "2026-11-01T10:00:00Z",
        "occurred_at_type": "string",
        "properties": None,
        "properties_type": None,
    }
    base.update(fields)
    return base


def run(*rows: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    raw = pl.DataFrame([dict(r, row=i + 1) for i, r in enumerate(rows)], schema=RAW_EVENT_SCHEMA)
    result = validate_raw_events(raw, NOW)
    return result.accepted, result.rejected


BAD_ROWS = [
    # (reason, fields of the bad row)
    ("invalid_event_id", {"event_id": ""}),
    ("invalid_event_id", {"event_id": "   "}),
    ("invalid_event_id", {"event_id": "x" * 129}),
    ("invalid_tenant_id", {"tenant_id": "-starts-with-dash"}),
    ("invalid_tenant_id", {"tenant_id": "t" * 65}),
    ("invalid_tenant_id", {"tenant_id": "has space"}),
    ("invalid_metric", {"metric": "Api.Calls"}),
    ("invalid_metric", {"metric": "1calls"}),
    ("invalid_quantity", {"quantity": "NaN"}),
    ("invalid_quantity", {"quantity": "Infinity"}),
    ("invalid_quantity", {"quantity": "12abc"}),
    ("invalid_quantity", {"quantity": "true", "quantity_type": "other"}),
    ("negative_quantity", {"quantity": "-1"}),
    ("negative_quantity", {"quantity": "-0.0000001"}),
    ("quantity_too_large", {"quantity": "1000000000000.000001"}),
    ("quantity_too_large", {"quantity": "1e400"}),
    ("invalid_timestamp", {"occurred_at": "yesterday"}),
    ("invalid_timestamp", {"occurred_at": "2026-02-30T10:00:00Z"}),
    ("invalid_timestamp", {"occurred_at": "2026-11-01T24:00:00Z"}),
    ("invalid_timestamp", {"occurred_at": "1999-12-31T23:59:59Z"}),
    ("naive_timestamp", {"occurred_at": "2026-11-01T10:00:00"}),
    ("future_timestamp", {"occurred_at": "2026-11-24T12:05:01Z"}),
    ("future_timestamp", {"occurred_at": "9999-12-31T23:59:59Z"}),
    ("missing_field", {"metric": None, "metric_type": None}),
    ("missing_field", {"quantity": None, "quantity_type": None}),
    ("malformed_row", {"is_object": False}),
    ("invalid_event_id", {"event_id": "5", "event_id_type": "number"}),
    ("invalid_metric", {"metric": "[1]", "metric_type": "other"}),
    ("malformed_row", {"properties": "[1]", "properties_type": "other"}),
]


@pytest.mark.parametrize(
    ("reason", "fields"), BAD_ROWS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD_ROWS)]
)
def test_bad_row_rejected_with_reason_good_neighbour_kept(
    reason: str, fields: dict[str, Any]
) -> None:
    accepted, rejected = run(event(event_id="before"), event(**fields), event(event_id="after"))
    assert rejected.select("row", "reason").rows() == [(2, reason)]
    assert accepted.get_column("event_id").to_list() == ["before", "after"]


def test_first_reason_wins_when_a_row_breaks_several_rules() -> None:
    _, rejected = run(event(tenant_id="-bad", quantity="-5", occurred_at="nope"))
    assert rejected.get_column("reason").to_list() == ["invalid_tenant_id"]


QUANTITIES = [
    # (text, micro-units): exact, half-even to 6 places
    ("0", 0),
    ("-0", 0),
    ("1.5", 1_500_000),
    ("0.0000005", 0),  # tie, 0 is even
    ("0.0000015", 2),  # tie, rounds to even 2
    ("0.0000025", 2),  # tie, rounds to even 2
    ("0.00000250000001", 3),  # above the tie
    ("123456789012.1234565", 123_456_789_012_123_456),
    ("0.1234567890123456789012345678", 123_457),  # 28 decimals, exact
    ("1e3", 1_000_000_000),
    ("1.5E-3", 1_500),
    (".5", 500_000),
    ("5.", 5_000_000),
    ("1000000000000", 10**18),  # exactly the limit
    ("+7", 7_000_000),
]


@pytest.mark.parametrize(("text", "micros"), QUANTITIES)
def test_quantity_parsed_exactly(text: str, micros: int) -> None:
    accepted, rejected = run(event(quantity=text))
    assert rejected.height == 0
    assert accepted.get_column("quantity_micros").to_list() == [micros]


TIMESTAMPS = [
    # (occurred_at, type, UTC instant)
    ("2026-11-01T23:30:00-05:00", "string", dt.datetime(2026, 11, 2, 4, 30, tzinfo=dt.UTC)),
    ("2026-11-01T01:00:00+05:30", "string", dt.datetime(2026, 10, 31, 19, 30, tzinfo=dt.UTC)),
    (
        "2026-11-01t10:00:00.123456789z",
        "string",
        dt.datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=dt.UTC),
    ),
    ("2026-11-01 10:00:00Z", "string", dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)),
    ("1762000000", "number", dt.datetime(2025, 11, 1, 12, 26, 40, tzinfo=dt.UTC)),
    ("1762000000.5", "number", dt.datetime(2025, 11, 1, 12, 26, 40, 500000, tzinfo=dt.UTC)),
    ("1762000000", "string", dt.datetime(2025, 11, 1, 12, 26, 40, tzinfo=dt.UTC)),
]


@pytest.mark.parametrize(("text", "kind", "instant"), TIMESTAMPS)
def test_timestamp_to_utc_day(text: str, kind: str, instant: dt.datetime) -> None:
    accepted, rejected = run(event(occurred_at=text, occurred_at_type=kind))
    assert rejected.height == 0
    assert accepted.get_column("occurred_at").to_list() == [instant]
    assert accepted.get_column("usage_date").to_list() == [instant.date()]


def test_micros_to_text() -> None:
    assert [micros_to_text(m) for m in (0, 1, 1_500_000, 10**18)] == [
        "0",
        "0.000001",
        "1.5",
        "1000000000000",
    ]
