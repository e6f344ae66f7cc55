"""Usage events: the one definition of the contract's event rules (section 2).

Used by the file pipeline and by `POST /api/billing/usage:ingest` alike. The flow is:

    raw frame (text of each field + its JSON type)  --parse_raw_events-->  typed frame
    typed frame  --EventRecord (Pandera, polars)-->  failure cases  --> one reason per row

Parsing is exact: a quantity is parsed from its decimal text into integer micro-units
(10^-6) with half-even rounding, never through a float. Timestamps must carry `Z` or an
offset (RFC 3339) or be epoch seconds.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import duckdb
import pandera.polars as pa
import polars as pl
from duckdb.func import FunctionNullHandling
from pandera.errors import SchemaErrors

from tallyflow.core.sqlfiles import duckdb_sql

MICROS: Final = 1_000_000
MAX_QUANTITY_MICROS: Final = 10**12 * MICROS
FUTURE_TOLERANCE_SECONDS: Final = 300
# NOTE: not in the contract's table, decided here: an epoch or date before 2000-01-01 is
# [invalid_timestamp] (a device clock reset to 1970 is an error, not usage from 1970).
EARLIEST_OCCURRED_AT: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
TENANT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
METRIC_PATTERN: Final = r"^[a-z][a-z0-9_.]{0,63}$"
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

# Type tags of a raw field: what the value was in the source.
STRING: Final = "string"
NUMBER: Final = "number"
OTHER: Final = "other"  # boolean, object, array: never a valid value for a field

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

_DECIMAL = r"^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,6}))?$"
_RFC3339 = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?$"
)


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


@dataclass(frozen=True)
class ValidationResult:
    """Accepted events (ACCEPTED_SCHEMA) and rejected rows (row, reason, detail)."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame


def empty_raw_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_EVENT_SCHEMA)


NEGATIVE: Final = -1  # quantity_micros_exact: the value is below zero
_DECIMAL_RE: Final = re.compile(_DECIMAL)
_RFC3339_RE: Final = re.compile(_RFC3339)
_EPOCH_RE: Final = re.compile(r"^([+-]?[0-9]+)(?:\.([0-9]+))?$")
_MAX_EPOCH_SECONDS: Final = 253_402_300_800  # 10000-01-01: beyond it no date exists
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def quantity_micros_exact(text: str, kind: str | None) -> int | None:
    """The quantity rule, exactly: micro-units rounded half-even (never a float).

    None when the value is not a finite number (or of another JSON type), NEGATIVE when
    it is below zero, MAX_QUANTITY_MICROS + 1 for anything beyond the limit. The SQL
    parser (sql/parse_raw_events.sql) handles the common spellings itself and asks this
    function for the rest; tests hold the two to the same answers.
    """
    if kind not in (STRING, NUMBER):
        return None
    match = _DECIMAL_RE.match(text.strip())
    if match is None:
        return None
    sign, whole, frac, exp = match.groups()
    whole, frac = whole or "", frac or ""
    if not whole and not frac:
        return None
    digits = (whole + frac).lstrip("0")
    if not digits:
        return 0
    if sign == "-":
        return NEGATIVE
    n, shift = len(digits), int(exp or 0) - len(frac) + 6  # value = digits * 10^shift
    if n + shift > 19:  # at least 10^19 micro-units
        return MAX_QUANTITY_MICROS + 1
    if shift >= 0:
        micros = int(digits) * 10**shift
    elif n + shift < 0:  # below 0.1 micro-units
        micros = 0
    else:
        kept, dropped = digits[: n + shift], digits[n + shift :]
        micros = int(kept or "0")
        if dropped[0] > "5" or (
            dropped[0] == "5" and (dropped[1:].strip("0") != "" or micros % 2 == 1)
        ):
            micros += 1
    return micros if micros <= MAX_QUANTITY_MICROS else MAX_QUANTITY_MICROS + 1


def occurred_at_micros_exact(text: str, kind: str | None) -> int | None:
    """The timestamp rule: epoch microseconds (UTC) of RFC 3339 text with `Z` or an
    offset, or of epoch seconds (a number or numeric text); None otherwise. Fractions
    beyond microseconds are cut off."""
    value = text.strip()
    epoch = _EPOCH_RE.match(value) if kind in (STRING, NUMBER) else None
    if epoch is not None:
        seconds = int(epoch[1]) if len(epoch[1]) <= 20 else _MAX_EPOCH_SECONDS
        if abs(seconds) >= _MAX_EPOCH_SECONDS:
            return None
        return seconds * MICROS + int((epoch[2] or "").ljust(6, "0")[:6])
    rfc = _RFC3339_RE.match(value.upper()) if kind == STRING else None
    if rfc is None or rfc[4] is None:
        return None
    date, time, frac, zone = rfc.groups()
    zone = "+00:00" if zone == "Z" else zone
    try:
        moment = dt.datetime.fromisoformat(f"{date}T{time}.{(frac or '')[:6].ljust(6, '0')}{zone}")
    except ValueError:
        return None
    return _micros(moment)


def is_naive_timestamp(text: str) -> bool:
    """A real date-time in RFC 3339 form without `Z` or an offset."""
    rfc = _RFC3339_RE.match(text.strip().upper())
    if rfc is None or rfc[4] is not None:
        return False
    try:
        dt.datetime.fromisoformat(f"{rfc[1]}T{rfc[2]}")
    except ValueError:
        return False
    return True


_parser_db: tuple[int, duckdb.DuckDBPyConnection] | None = None
_parser_lock = threading.Lock()


def event_parser() -> duckdb.DuckDBPyConnection:
    """A connection with the reference parsers (UDFs) and the JSON field macros registered
    (UTC session): a cursor on one
    in-memory DuckDB per process, since opening a database costs 15 ms (a pushed request
    pays it otherwise). Temp views and registered frames stay local to the cursor."""
    global _parser_db
    with _parser_lock:
        if _parser_db is None or _parser_db[0] != os.getpid():  # NOTE: never across a fork
            db = duckdb.connect()
            db.create_function(
                "quantity_micros_exact",
                quantity_micros_exact,
                ["VARCHAR", "VARCHAR"],
                "BIGINT",
                null_handling=FunctionNullHandling.SPECIAL,
            )
            db.create_function(
                "occurred_at_micros_exact",
                occurred_at_micros_exact,
                ["VARCHAR", "VARCHAR"],
                "BIGINT",
                null_handling=FunctionNullHandling.SPECIAL,
            )
            db.create_function("is_naive_timestamp", is_naive_timestamp, ["VARCHAR"], "BOOLEAN")
            db.execute(duckdb_sql("events/create_json_text_macro"))
            db.execute(duckdb_sql("events/create_json_kind_macro"))
            _parser_db = (os.getpid(), db)
        con = _parser_db[1].cursor()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _parse(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> pl.DataFrame:
    """Run sql/parse_raw_events.sql over the relation `raw_events` of `con`, in row order."""
    typed: pl.DataFrame = con.sql(
        duckdb_sql("events/parse_raw_events"),
        params={"earliest_us": _micros(EARLIEST_OCCURRED_AT), "now_us": _micros(now)},
    ).pl()
    typed = typed.cast(
        {"row": pl.Int64, "occurred_at": pl.Datetime("us", "UTC"), "quantity_micros": pl.Int64}
    )
    if not typed.get_column("row").is_sorted():  # NOTE: a parallel scan may reorder rows
        typed = typed.sort("row")
    return typed


def parse_raw_events(raw: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """Typed columns for EventRecord from a RAW_EVENT_SCHEMA frame (one DuckDB statement);
    one row per input row, in row order."""
    raw_events = raw.select(RAW_EVENT_SCHEMA.names())
    con = event_parser()
    try:
        con.register("raw_events", raw_events)
        return _parse(con, now)
    finally:
        con.close()


def parse_json_lines(lines: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """Typed columns for EventRecord from JSON lines (row, text): each line is taken apart
    (sql/extract_json_event_fields.sql) and parsed in one DuckDB statement."""
    json_lines = lines.select("row", "text")
    con = event_parser()
    try:
        con.register("json_lines", json_lines)
        con.execute(f"CREATE TEMP VIEW raw_events AS {load_sql('extract_json_event_fields')}")
        return _parse(con, now)
    finally:
        con.close()


def _micros(moment: dt.datetime) -> int:
    delta = moment.astimezone(dt.UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


def _only_structural(frame: pl.DataFrame) -> pl.DataFrame:
    """Null every field check on rows that fail the structural checks (one reason each)."""
    ok = pl.col("is_object") & pl.col("fields_present").fill_null(False)
    checked = [c for c in COLUMN_REASON if c not in ("is_object", "fields_present")]
    return frame.with_columns(
        pl.when(pl.col("is_object")).then(pl.col("fields_present")).alias("fields_present"),
        *[pl.when(ok).then(pl.col(c)).alias(c) for c in checked],
    )


def reasons_for(frame: pl.DataFrame) -> pl.DataFrame:
    """Run EventRecord on a parsed frame: (position, reason, detail) per rejected row."""
    try:
        EventRecord.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases: pl.DataFrame = errors.failure_cases
    else:
        return pl.DataFrame(schema={"position": pl.Int64, "reason": pl.String, "detail": pl.String})
    if cases.filter(pl.col("index").is_null()).height:
        schema_level = cases.filter(pl.col("index").is_null()).to_dicts()
        raise TypeError(f"event frame does not match EventRecord: {schema_level}")
    priority = {reason.value: i for i, reason in enumerate(REASON_PRIORITY)}
    return (
        cases.select(
            pl.col("index").cast(pl.Int64).alias("position"),
            pl.col("column")
            .replace_strict({k: v.value for k, v in COLUMN_REASON.items()}, return_dtype=pl.String)
            .alias("reason"),
            pl.format("{} failed {}", pl.col("column"), pl.col("check")).alias("detail"),
        )
        .with_columns(pl.col("reason").replace_strict(priority, return_dtype=pl.Int64).alias("p"))
        .sort("position", "p")
        .unique("position", keep="first", maintain_order=True)
        .drop("p")
    )


def validate_parsed(parsed: pl.DataFrame, raw_text: pl.Series | None = None) -> ValidationResult:
    """Split a parsed frame into accepted events and rejected rows (one reason per row).

    `accepted` has ACCEPTED_SCHEMA; `rejected` has row, event_id, tenant_id, reason, detail
    and, when `raw_text` (one value per parsed row, in order) is given, `raw`.
    """
    reasons = reasons_for(_only_structural(parsed))
    frame = parsed.with_row_index("position").cast({"position": pl.Int64})
    accepted = frame.join(
        reasons.select("position"), on="position", how="anti", maintain_order="left"
    ).select(
        "row",
        "event_id",
        "tenant_id",
        "metric",
        "quantity_micros",
        "occurred_at",
        pl.col("occurred_at").dt.date().alias("usage_date"),
        "properties",
    )
    if raw_text is not None:
        frame = frame.with_columns(raw_text.alias("raw"))
    rejected = frame.join(reasons, on="position", how="inner", maintain_order="right").select(
        "row",
        "event_id",
        "tenant_id",
        "reason",
        "detail",
        *(["raw"] if raw_text is not None else []),
    )
    return ValidationResult(accepted=accepted.cast(ACCEPTED_SCHEMA), rejected=rejected)


def validate_raw_events(raw: pl.DataFrame, now: dt.datetime) -> ValidationResult:
    """Validate a RAW_EVENT_SCHEMA frame (its `raw` column, when present, is kept for the
    rejected rows)."""
    if not raw.get_column("row").is_sorted():
        raw = raw.sort("row")
    text = raw.get_column("raw") if "raw" in raw.columns else None
    return validate_parsed(parse_raw_events(raw, now), text)


def validate_json_lines(lines: pl.DataFrame, now: dt.datetime) -> ValidationResult:
    """Validate JSON lines (row, text, raw), as split by the file reader."""
    return validate_parsed(parse_json_lines(lines, now), lines.get_column("raw"))


def micros_to_text(micros: int) -> str:
    """Exact decimal text of a micro-unit integer (e.g. 1500000 -> '1.5')."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    text = f"{whole}.{frac:06d}".rstrip("0").rstrip(".")
    return sign + text
