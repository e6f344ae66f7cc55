"""Landing files are read in bounded batches: line and record numbers continue across
batches, results equal a whole-file read, a gzip bomb is refused by the decompressed-size
cap, an over-long line is rejected, and whatever fails while reading makes the file
unreadable (never a traceback)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.ingest.readers import (
    ReadLimits,
    UnreadableFile,
    accepted_parts,
    raw_text_of_lines,
    read_event_file,
    stream_event_file,
    try_stream_event_file,
    validate_event_file,
)

NOW = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
WHOLE = ReadLimits(batch_bytes=1 << 30)
TINY = ReadLimits(batch_bytes=97, max_line_bytes=4096, spool_rows=3)


def _event(i: int, **extra: object) -> dict[str, object]:
    return {
        "event_id": f"e{i}",
        "tenant_id": "acme",
        "metric": "api.calls",
        "quantity": f"{i}.5",
        "occurred_at": "2026-11-01T00:00:00Z",
        **extra,
    }


def _jsonl_lines() -> list[str]:
    lines = [json.dumps(_event(i)) for i in range(1, 21)]
    lines[4] = "{not json"  # line 5: malformed_row
    lines[9] = ""  # line 10: blank, not a row
    lines[14] = json.dumps(_event(15, quantity="-1"))  # negative_quantity
    return lines


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.equals(b), (a, b)


@pytest.mark.parametrize("gz", [False, True])
def test_jsonl_batches_equal_a_whole_read(tmp_path: Path, gz: bool) -> None:
    text = ("\n".join(_jsonl_lines())).encode()  # no final newline
    path = tmp_path / ("u.jsonl.gz" if gz else "u.jsonl")
    path.write_bytes(b"\xef\xbb\xbf" + text if not gz else gzip.compress(b"\xef\xbb\xbf" + text))
    whole = validate_event_file(path, NOW, WHOLE)
    streamed = stream_event_file(path, NOW, TINY)
    parts = list(accepted_parts(streamed))
    assert len(parts) > 1  # spooled past spool_rows, then the rest from memory
    _same(pl.concat(parts), whole.accepted)
    _same(streamed.rejected, whole.rejected)
    assert streamed.rows == 19
    assert whole.rejected.select("row", "reason").rows() == [
        (5, "malformed_row"),
        (15, "negative_quantity"),
    ]
    assert whole.accepted.get_column("row").to_list() == [
        r for r in range(1, 21) if r not in (5, 10, 15)
    ]
    assert raw_text_of_lines(path, [5]).rows() == [(5, "{not json")]


def test_csv_batches_keep_records_whole(tmp_path: Path) -> None:
    header = "event_id,tenant_id,metric,quantity,occurred_at,note\r\n"
    records = [
        f'e{i},acme,api.calls,{i},2026-11-01T00:00:00Z,"line one\nline ""two"" of {i}"\r\n'
        for i in range(1, 30)
    ]
    records[6] = "e7,acme,api.calls,,2026-11-01T00:00:00Z,x\r\n"  # missing_field
    path = tmp_path / "u.csv.gz"
    path.write_bytes(gzip.compress(("\ufeff" + header + "".join(records)).encode()))
    whole = validate_event_file(path, NOW, WHOLE)
    streamed = validate_event_file(path, NOW, TINY)
    _same(streamed.accepted, whole.accepted)
    _same(streamed.rejected, whole.rejected)
    assert whole.rejected.select("row", "reason").rows() == [(8, "missing_field")]
    assert whole.accepted.height == 28
    assert read_event_file(path, TINY).get_column("row").to_list() == list(range(2, 31))


def test_parquet_read_by_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.ingest import readers

    monkeypatch.setattr(readers, "PARQUET_BATCH_ROWS", 7)
    n = 50
    table = pa.table(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "tenant_id": ["acme"] * n,
            "metric": ["api.calls"] * n,
            "quantity": [1.5] * n,
            "occurred_at": ["2026-11-01T00:00:00Z"] * n,
        }
    )
    path = tmp_path / "u.parquet"
    pq.write_table(table, path, row_group_size=16)
    result = stream_event_file(path, NOW, TINY)
    accepted = pl.concat(list(accepted_parts(result)))
    assert accepted.get_column("row").to_list() == list(range(1, n + 1))
    assert accepted.get_column("event_id").to_list() == [f"e{i}" for i in range(n)]


def test_gzip_bomb_refused_by_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    line = json.dumps(_event(1)).encode() + b"\n"
    path.write_bytes(gzip.compress(line * 200_000, compresslevel=9))  # ~30 MB out
    assert path.stat().st_size < 1 << 20
    limits = ReadLimits(batch_bytes=1 << 20, max_decompressed_bytes=4 << 20)
    outcome = try_stream_event_file_with(path, limits)
    assert isinstance(outcome, UnreadableFile)
    assert "decompressed size over the cap of 4,194,304 bytes" in str(outcome)
    # under a larger cap the same file reads
    assert stream_event_file(path, NOW, ReadLimits(batch_bytes=8 << 20)).rows == 200_000


def try_stream_event_file_with(path: Path, limits: ReadLimits) -> object:
    try:
        return stream_event_file(path, NOW, limits)
    except UnreadableFile as exc:
        return exc


def test_long_line_rejected_with_its_start_kept(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    long_line = json.dumps(_event(2, properties={"blob": "x" * 20_000}))
    path.write_text("\n".join([json.dumps(_event(1)), long_line, json.dumps(_event(3))]) + "\n")
    result = validate_event_file(path, NOW, ReadLimits(batch_bytes=1000, max_line_bytes=5000))
    assert result.accepted.get_column("row").to_list() == [1, 3]
    assert result.rejected.select("row", "reason").rows() == [(2, "malformed_row")]
    raw = result.rejected.get_column("raw").item()
    assert raw.startswith('{"event_id": "e2"') and "over the line limit of 5,000" in raw


def test_unbalanced_csv_quote_makes_the_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text(
        "event_id,tenant_id,metric,quantity,occurred_at\n"
        + 'e0,acme,"api.calls,1,2026-11-01T00:00:00Z\n'  # a quote never closed
        + "e1,acme,api.calls,1,2026-11-01T00:00:00Z\n" * 500
    )
    with pytest.raises(UnreadableFile, match="CSV record longer than 2,000 bytes"):
        validate_event_file(path, NOW, ReadLimits(batch_bytes=500, max_line_bytes=2000))


@pytest.mark.parametrize("kind", ["MemoryError", "OSError", "RuntimeError"])
def test_any_failure_while_reading_is_an_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps(_event(1)) + "\n")
    monkeypatch.setenv("TALLYFLOW_FAULT_RAISE_AT", f"ingest.read_batch:u.jsonl={kind}")
    outcome = try_stream_event_file(str(path), NOW)
    assert isinstance(outcome, UnreadableFile)
    assert kind in str(outcome)


def test_event_quantity_not_a_properties_quantity(tmp_path: Path) -> None:
    # NOTE: both literals are the same double; only the event's own text is exact.
    own, inner = "123456789012.1234564", "123456789012.1234569"
    assert float(own) == float(inner)
    path = tmp_path / "q.jsonl"
    tail = '"tenant_id":"acme","metric":"api.calls","occurred_at":"2026-11-01T00:00:00Z"'
    path.write_text(
        f'{{"properties":{{"quantity":{inner}}},"event_id":"e1",{tail},"quantity":{own}}}\n'
        f'{{"event_id":"e2","quantity":{own},{tail},"properties":{{"quantity":{inner}}}}}\n'
    )
    result = validate_event_file(path, NOW)
    assert result.accepted.get_column("quantity_micros").to_list() == [123456789012123456] * 2
