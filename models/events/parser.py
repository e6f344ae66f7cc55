"""The event parser: one DuckDB statement from a raw frame (or JSON lines) to the typed
columns `EventRecord` checks."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import threading

import duckdb
import polars as pl
from duckdb.func import FunctionNullHandling

from models.events.frame import RAW_EVENT_SCHEMA
from models.events.parsers import (
    is_naive_timestamp,
    micros_of,
    occurred_at_micros_exact,
    quantity_literal,
    quantity_micros_exact,
)
from models.events.rules import EARLIEST_OCCURRED_AT
from tallyflow.core.sqlfiles import duckdb_sql

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
            db.create_function("quantity_literal", quantity_literal, ["VARCHAR"], "VARCHAR")
            db.execute(duckdb_sql("events/create_json_text_macro"))
            db.execute(duckdb_sql("events/create_json_kind_macro"))
            _parser_db = (os.getpid(), db)
            atexit.register(_close_parser_db)
        con = _parser_db[1].cursor()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _close_parser_db() -> None:
    """Close the process's parser database before the interpreter tears the binding down.

    NOTE: a DuckDB connection still open at exit makes nanobind print "leaked N instances"
    on stderr after every command that parsed events."""
    global _parser_db
    with _parser_lock:
        if _parser_db is not None and _parser_db[0] == os.getpid():
            _parser_db[1].close()
        _parser_db = None


def _parse(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> pl.DataFrame:
    """Run sql/parse_raw_events.sql over the relation `raw_events` of `con`, in row order."""
    typed: pl.DataFrame = con.sql(
        duckdb_sql("events/parse_raw_events"),
        params={"earliest_us": micros_of(EARLIEST_OCCURRED_AT), "now_us": micros_of(now)},
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
        con.sql(duckdb_sql("events/extract_json_event_fields")).create_view("raw_events")
        return _parse(con, now)
    finally:
        con.close()
