"""Readers keep every row with its number and raw text, and report field types exactly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from models.events import validate_raw_events
from services.ingest.discovery import discover_files
from services.ingest.readers import read_event_file

NOW = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
GOOD = (
    '{"event_id":"e%d","tenant_id":"t","metric":"m","quantity":%s,'
    '"occurred_at":"2026-11-01T00:00:00Z"}'
)


def test_json_lines_oddities(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"  # BOM: ignored
        + (GOOD % (1, "0.1234567890123456789")).encode()
        + b"\r\n"  # CRLF, 19 decimals
        + b"\n   \n"  # blank lines: not rows
        + b'{"event_id":"e\\u00e92","tenant_id":"t","metric":"m","quantity":"2",'
        b'"occurred_at":"2026-11-01T00:00:00Z"}\n'  # escaped string
        + b"\xff\xfe not utf-8\n"  # invalid UTF-8: malformed_row, raw kept
        + b'{"event_id":"e3","tenant_id":"t","metric":"m","quantity":1,'
        b'"occurred_at":"2026-11-01T00:00:00Z","properties":{"a":[1,2]}}'  # no final newline
    )
    raw = read_event_file(path)
    assert raw.get_column("row").to_list() == [1, 4, 5, 6]
    result = validate_raw_events(raw, NOW)
    accepted = result.accepted
    assert accepted.get_column("event_id").to_list() == ["e1", "eé2", "e3"]
    assert accepted.get_column("quantity_micros").to_list() == [123457, 2_000_000, 1_000_000]
    assert accepted.get_column("properties").to_list()[2] == '{"a":[1,2]}'
    assert result.rejected.select("row", "reason").rows() == [(5, "malformed_row")]
    assert result.rejected.get_column("raw").to_list() == ["\\xff\\xfe not utf-8"]


def test_json_types_checked(tmp_path: Path) -> None:
    path = tmp_path / "types.jsonl"
    path.write_text(
        "\n".join(
            [
                GOOD % (1, "true"),  # boolean quantity
                GOOD % (2, "[1]"),  # array quantity
                GOOD % (3, "null"),  # null = missing
                '{"event_id":7,"tenant_id":"t","metric":"m","quantity":1,"occurred_at":1762000000}',
                "[]",
            ]
        )
    )
    result = validate_raw_events(read_event_file(path), NOW)
    assert result.rejected.select("row", "reason").rows() == [
        (1, "invalid_quantity"),
        (2, "invalid_quantity"),
        (3, "missing_field"),
        (4, "invalid_event_id"),
        (5, "malformed_row"),
    ]


def test_csv_header_case_extra_columns_and_quoted_newline(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text(
        "Event_ID,tenant_id,metric,quantity,occurred_at,extra\n"
        'e1,t,m,1.5,2026-11-01T00:00:00Z,"two\nlines"\n'
        "e2,t,m,,2026-11-01T00:00:00Z,x\n"
    )
    result = validate_raw_events(read_event_file(path), NOW)
    assert result.accepted.get_column("quantity_micros").to_list() == [1_500_000]
    assert result.rejected.select("row", "reason").rows() == [(3, "missing_field")]


def test_parquet_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "u.parquet"
    pl.DataFrame(
        {
            "event_id": ["a", "b"],
            "tenant_id": ["t", "t"],
            "metric": ["m", "m"],
            "quantity": [1.25, 2.0],
            "occurred_at": [dt.datetime(2026, 11, 1, tzinfo=dt.UTC)] * 2,
        }
    ).write_parquet(path)
    naive = tmp_path / "naive.parquet"
    pl.DataFrame(
        {
            "event_id": ["c"],
            "tenant_id": ["t"],
            "metric": ["m"],
            "quantity": [1],
            "occurred_at": [dt.datetime(2026, 11, 1)],
        }
    ).write_parquet(naive)
    result = validate_raw_events(read_event_file(path), NOW)
    assert result.accepted.get_column("quantity_micros").to_list() == [1_250_000, 2_000_000]
    result = validate_raw_events(read_event_file(naive), NOW)
    assert result.rejected.get_column("reason").to_list() == ["naive_timestamp"]


def test_discover_skips_hidden_and_lists_ignored(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / ".partial.jsonl").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.csv.gz").write_bytes(b"")
    files, ignored = discover_files([tmp_path])
    assert [f.name for f in files] == ["a.jsonl", "b.csv.gz"]
    assert [Path(p).name for p in ignored] == ["notes.txt"]


def test_rows_keep_file_order_in_big_files(tmp_path: Path) -> None:
    # NOTE: DuckDB scans large inputs in parallel chunks; the first occurrence of a key
    # must stay first (it is the version that stands), so rows come back in file order.
    path = tmp_path / "big.jsonl"
    path.write_text("".join(GOOD % (i, "1") + "\n" for i in range(300_000)))
    rows = read_event_file(path).get_column("row")
    assert rows.is_sorted() and rows.len() == 300_000
