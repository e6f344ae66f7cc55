"""Validation: the parsed frame checked against `EventRecord`, one reason per rejected row."""

from __future__ import annotations

import datetime as dt

import polars as pl
from pandera.errors import SchemaErrors

from models.events.frame import ACCEPTED_SCHEMA, ValidationResult
from models.events.parser import parse_json_lines, parse_raw_events
from models.events.rules import COLUMN_REASON, REASON_PRIORITY, EventRecord


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
