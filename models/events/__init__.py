"""Usage events: the one definition of the contract's event rules (section 2).

Used by the file pipeline and by `POST /api/billing/usage:ingest` alike. The flow is:

    raw frame (text of each field + its JSON type)  --parse_raw_events-->  typed frame
    typed frame  --EventRecord (Pandera, polars)-->  failure cases  --> one reason per row

Parsing is exact: a quantity is parsed from its decimal text into integer micro-units
(10^-6) with half-even rounding, never through a float. Timestamps must carry `Z` or an
offset (RFC 3339) or be epoch seconds.
"""

from models.events.frame import (
    ACCEPTED_SCHEMA,
    NUMBER,
    OBJECT,
    OTHER,
    RAW_EVENT_SCHEMA,
    STRING,
    TypeTag,
    ValidationResult,
    empty_raw_frame,
)
from models.events.parser import event_parser, parse_json_lines, parse_raw_events
from models.events.parsers import (
    NEGATIVE,
    is_naive_timestamp,
    micros_to_text,
    occurred_at_micros_exact,
    quantity_micros_exact,
)
from models.events.rules import (
    COLUMN_REASON,
    EARLIEST_OCCURRED_AT,
    FIELDS,
    FUTURE_TOLERANCE_SECONDS,
    MAX_QUANTITY_MICROS,
    MICROS,
    REASON_PRIORITY,
    REQUIRED_FIELDS,
    EventRecord,
    RejectReason,
)
from models.events.validate import (
    reasons_for,
    validate_json_lines,
    validate_parsed,
    validate_raw_events,
)

__all__ = [
    "ACCEPTED_SCHEMA",
    "COLUMN_REASON",
    "EARLIEST_OCCURRED_AT",
    "FIELDS",
    "FUTURE_TOLERANCE_SECONDS",
    "MAX_QUANTITY_MICROS",
    "MICROS",
    "NEGATIVE",
    "NUMBER",
    "OBJECT",
    "OTHER",
    "RAW_EVENT_SCHEMA",
    "REASON_PRIORITY",
    "REQUIRED_FIELDS",
    "STRING",
    "EventRecord",
    "RejectReason",
    "TypeTag",
    "ValidationResult",
    "empty_raw_frame",
    "event_parser",
    "is_naive_timestamp",
    "micros_to_text",
    "occurred_at_micros_exact",
    "parse_json_lines",
    "parse_raw_events",
    "quantity_micros_exact",
    "reasons_for",
    "validate_json_lines",
    "validate_parsed",
    "validate_raw_events",
]
