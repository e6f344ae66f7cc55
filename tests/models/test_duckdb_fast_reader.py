"""Why DuckDB's own `read_json` is not the JSON lines reader (issue 12 item 1), shown on the
real library: its row order holds (DuckDB's "Order Preservation": `row_number() OVER ()`
numbers a clean file's lines), but what the contract needs per line it cannot give. One bad
line fails the whole read, or with `ignore_errors` vanishes without a line number; blank
lines are skipped, so the numbers of the lines after them shift; a repeated key is read
without a word. The exact statement (models/events/parser.py) answers each of these, as the
last test shows. bench/README.md measures the fast path this leaves possible (read_json per
batch, the exact statement for the batches it cannot take)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from models.events.validate import validate_json_lines
from services.ingest.readers import _split_lines

NOW = dt.datetime(2026, 11, 15, tzinfo=dt.UTC)
REPEATED = (
    '{"x":1,"x":2,"event_id":"a","tenant_id":"acme","metric":"api.calls","quantity":"1",'
    '"occurred_at":"2026-11-01T00:00:00Z"}'
)
COLUMNS = "{event_id: 'VARCHAR', tenant_id: 'VARCHAR', metric: 'VARCHAR', quantity: 'VARCHAR'}"


def _line(i: int) -> str:
    return json.dumps(
        {
            "event_id": f"e{i}",
            "tenant_id": "acme",
            "metric": "api.calls",
            "quantity": "1",
            "occurred_at": "2026-11-01T00:00:00Z",
        }
    )


def _read(path: Path, **options: str) -> list[tuple[int, str]]:
    extra = "".join(f", {k} = {v}" for k, v in options.items())
    con = duckdb.connect()
    try:
        return con.sql(
            "SELECT row_number() OVER () AS line, event_id FROM read_json(?, format ="
            f" 'newline_delimited', columns = {COLUMNS}{extra})",
            params=[str(path)],
        ).fetchall()
    finally:
        con.close()


def test_the_row_order_holds_on_a_clean_file(tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    path.write_text("".join(_line(i) + "\n" for i in range(1, 200_001)))
    assert _read(path) == [(i, f"e{i}") for i in range(1, 200_001)]


def test_one_bad_line_fails_the_read_or_reads_as_an_empty_object(tmp_path: Path) -> None:
    path = tmp_path / "one-bad.jsonl"
    path.write_text(f"{_line(1)}\n{{not json\n{{}}\n{_line(4)}\n")
    with pytest.raises(duckdb.InvalidInputException):
        _read(path)
    # NOTE: with ignore_errors the bad line is a row of nulls, the same as `{}` (an object
    # missing every field): the contract tells them apart (malformed_row, missing_field)
    assert _read(path, ignore_errors="true") == [(1, "e1"), (2, None), (3, None), (4, "e4")]


def test_blank_lines_shift_the_numbers_after_them(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_text(f"{_line(1)}\n\n{_line(3)}\n")
    assert _read(path) == [(1, "e1"), (2, "e3")]  # e3 is on line 3


def test_a_repeated_key_is_read_without_a_word(tmp_path: Path) -> None:
    """A repeated key outside the declared columns (a declared one is an error)."""
    path = tmp_path / "repeated.jsonl"
    path.write_text(REPEATED + "\n")
    assert _read(path) == [(1, "a")]


def test_the_exact_statement_answers_what_read_json_cannot(tmp_path: Path) -> None:
    data = f"{_line(1)}\n{{not json\n{{}}\n\n{REPEATED}\n{_line(6)}\n".encode()
    result = validate_json_lines(_split_lines(data), NOW)
    assert result.accepted.get_column("row").to_list() == [1, 6]
    assert result.rejected.select("row", "reason").rows() == [
        (2, "malformed_row"),
        (3, "missing_field"),
        (5, "malformed_row"),
    ]
