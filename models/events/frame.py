"""The event frames: the raw frame readers produce (each field's text and type tag), the
accepted frame the lake stores, and a validation result."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import polars as pl

from models.events.rules import FIELDS


class TypeTag(StrEnum):
    """What a raw field's value was in the source (`<field>_type`)."""

    STRING = "string"
    NUMBER = "number"
    OBJECT = "object"  # a JSON object: valid only for `properties`
    OTHER = "other"  # boolean, array, ...: never a valid value for a field


STRING: Final = TypeTag.STRING
NUMBER: Final = TypeTag.NUMBER
OBJECT: Final = TypeTag.OBJECT
OTHER: Final = TypeTag.OTHER

# The raw frame: one row per input row. `<field>` holds the field's text (a JSON string's
# content, a number's literal, a CSV cell) and `<field>_type` its tag; both are null when
# the field is absent (or JSON null, or an empty CSV cell).
RAW_EVENT_SCHEMA: Final = pl.Schema(
    [
        ("row", pl.Int64()),
        ("is_object", pl.Boolean()),
        *[(name, pl.String()) for field in FIELDS for name in (field, f"{field}_type")],
    ]
)

ACCEPTED_SCHEMA: Final = pl.Schema(
    [
        ("row", pl.Int64()),
        ("event_id", pl.String()),
        ("tenant_id", pl.String()),
        ("metric", pl.String()),
        ("quantity_micros", pl.Int64()),
        ("occurred_at", pl.Datetime("us", "UTC")),
        ("usage_date", pl.Date()),
        ("properties", pl.String()),
    ]
)


@dataclass(frozen=True)
class ValidationResult:
    """Accepted events (ACCEPTED_SCHEMA) and rejected rows (row, reason, detail)."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame


def empty_raw_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_EVENT_SCHEMA)
