"""The contract's event rules (section 2): limits, reasons and their order, and the Pandera
model `EventRecord` that states every rule over a parsed event frame."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Final

import pandera.polars as pa

from models.identifiers import METRIC_PATTERN, TENANT_ID_PATTERN

MICROS: Final = 1_000_000
MAX_QUANTITY_MICROS: Final = 10**12 * MICROS
FUTURE_TOLERANCE_SECONDS: Final = 300
# NOTE: not in the contract's table, decided here: an epoch or date before 2000-01-01 is
# [invalid_timestamp] (a device clock reset to 1970 is an error, not usage from 1970).
EARLIEST_OCCURRED_AT: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
REQUIRED_FIELDS: Final = ("event_id", "tenant_id", "metric", "quantity", "occurred_at")
FIELDS: Final = (*REQUIRED_FIELDS, "properties")


class RejectReason(StrEnum):
    """Why a row was rejected. Values are the contract's reason codes."""

    MALFORMED_ROW = "malformed_row"
    MISSING_FIELD = "missing_field"
    INVALID_EVENT_ID = "invalid_event_id"
    INVALID_TENANT_ID = "invalid_tenant_id"
    INVALID_METRIC = "invalid_metric"
    INVALID_QUANTITY = "invalid_quantity"
    NEGATIVE_QUANTITY = "negative_quantity"
    QUANTITY_TOO_LARGE = "quantity_too_large"
    INVALID_TIMESTAMP = "invalid_timestamp"
    NAIVE_TIMESTAMP = "naive_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    UNREADABLE_FILE = "unreadable_file"


# NOTE: a row breaking several rules gets the first reason in this order: structure
# first, then identity, then the quantity, then the time.
REASON_PRIORITY: Final = tuple(RejectReason)


class EventRecord(pa.DataFrameModel):
    """The contract's rules over a parsed event frame. Every column maps to one reason."""

    row: int = pa.Field()
    is_object: bool = pa.Field(eq=True)
    fields_present: bool = pa.Field(eq=True)
    event_id: str = pa.Field(nullable=True, str_length={"min_value": 1, "max_value": 128})
    event_id_is_text: bool = pa.Field(nullable=True, eq=True)
    event_id_not_blank: bool = pa.Field(nullable=True, eq=True)
    tenant_id: str = pa.Field(nullable=True, str_matches=TENANT_ID_PATTERN)
    tenant_id_is_text: bool = pa.Field(nullable=True, eq=True)
    metric: str = pa.Field(nullable=True, str_matches=METRIC_PATTERN)
    metric_is_text: bool = pa.Field(nullable=True, eq=True)
    quantity_finite: bool = pa.Field(nullable=True, eq=True)
    quantity_negative: bool = pa.Field(nullable=True, eq=False)
    quantity_micros: int = pa.Field(nullable=True, ge=0, le=MAX_QUANTITY_MICROS)
    occurred_at_valid: bool = pa.Field(nullable=True, eq=True)
    occurred_at_has_offset: bool = pa.Field(nullable=True, eq=True)
    seconds_ahead: int = pa.Field(nullable=True, le=FUTURE_TOLERANCE_SECONDS)

    class Config:
        strict = False  # pass-through columns (raw text, properties, ...) are allowed


COLUMN_REASON: Final[dict[str, RejectReason]] = {
    "is_object": RejectReason.MALFORMED_ROW,
    "fields_present": RejectReason.MISSING_FIELD,
    "event_id": RejectReason.INVALID_EVENT_ID,
    "event_id_is_text": RejectReason.INVALID_EVENT_ID,
    "event_id_not_blank": RejectReason.INVALID_EVENT_ID,
    "tenant_id": RejectReason.INVALID_TENANT_ID,
    "tenant_id_is_text": RejectReason.INVALID_TENANT_ID,
    "metric": RejectReason.INVALID_METRIC,
    "metric_is_text": RejectReason.INVALID_METRIC,
    "quantity_finite": RejectReason.INVALID_QUANTITY,
    "quantity_negative": RejectReason.NEGATIVE_QUANTITY,
    "quantity_micros": RejectReason.QUANTITY_TOO_LARGE,
    "occurred_at_valid": RejectReason.INVALID_TIMESTAMP,
    "occurred_at_has_offset": RejectReason.NAIVE_TIMESTAMP,
    "seconds_ahead": RejectReason.FUTURE_TIMESTAMP,
}
