"""Write the hostile input corpus under tests/data/hostile/ and its expectations.

    uv run python tests/data/make_hostile_corpus.py            # rewrite the committed corpus
    uv run python tests/data/make_hostile_corpus.py --big DIR  # + the 10 MB-line file in DIR

Every file pairs bad rows (or a bad whole file) with good rows.
`hostile_expectations.json` (next to this script) lists for each file, per the
contract (section 2), the rows read, accepted, duplicates and
rejected counts by reason, the exact sum of the accepted quantities (rounded half-even to
6 places), and one entry per row: its row number, what is odd about it and the expected
outcome (`ok`, `duplicate` or a reason). Harmless oddities (BOM, CRLF, extra columns,
blank lines...) are expected to be accepted and say so (`"harmless": true`).

Conventions the expectations rely on (decided where the contract is silent):
- row numbers: JSON Lines count physical lines from 1; blank lines are not rows. CSV
  counts the header as row 1 (a record spanning lines counts once). Parquet counts from 1.
- an empty CSV cell and a JSON `null` are an absent field [missing_field];
- occurred_at before 2000-01-01 is [invalid_timestamp] (models/events.py
  EARLIEST_OCCURRED_AT); the corpus assumes an ingest between 2026-11 and 2999;
- a file that cannot be read at all counts as one unreadable file, no rows; a .gz or
  .parquet file without its format's magic bytes (even zero bytes) is unreadable, a
  zero-byte .jsonl is an empty file;
- a field of the wrong JSON type (a number as event_id, an array as metric) is rejected
  with that field's reason (the contract's table gives one reason per field);
- NaN / Infinity literals (not JSON, but what Python's json.dumps writes) are
  [invalid_quantity]: not finite; a key repeated with different values is
  [malformed_row]: ambiguous content is never billed.

Every event id is unique to its file, so ingesting all files together gives the sum of
the per-file expectations (`totals`). The script is deterministic: rerunning it rewrites
byte-identical files (gzip mtime 0).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
OUT = HERE / "hostile"
EXPECTATIONS = HERE / "hostile_expectations.json"
TS = "2026-10-05T10:00:00Z"
EPOCH_TS = int(datetime(2026, 10, 5, 10, tzinfo=UTC).timestamp())
MICRO = Decimal("0.000001")

OK = "ok"
DUP = "duplicate"


@dataclass
class Row:
    """One input row: its bytes (a JSON line / CSV record) and what must come of it."""

    data: bytes
    expect: str
    case: str
    quantity: str | None = None  # decimal text of an accepted row's quantity
    harmless: bool = False


@dataclass
class Corpus:
    root: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)

    def add(
        self,
        name: str,
        content: bytes,
        rows: list[Row],
        *,
        first_row: int = 1,
        row_numbers: list[int] | None = None,
        note: str = "",
    ) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        numbers = row_numbers or list(range(first_row, first_row + len(rows)))
        by_reason: dict[str, int] = {}
        for r in rows:
            if r.expect not in (OK, DUP):
                by_reason[r.expect] = by_reason.get(r.expect, 0) + 1
        accepted = [r for r in rows if r.expect == OK]
        total = sum(
            (Decimal(r.quantity or "0").quantize(MICRO, ROUND_HALF_EVEN) for r in accepted),
            Decimal(0),
        )
        self.files[name] = {
            "note": note,
            "unreadable_file": False,
            "rows": len(rows),
            "accepted": len(accepted),
            "duplicates": sum(r.expect == DUP for r in rows),
            "rejected": sum(by_reason.values()),
            "rejected_by_reason": dict(sorted(by_reason.items())),
            "accepted_quantity_sum": f"{total.quantize(MICRO)}",
            "cases": [
                {
                    "row": n,
                    "case": r.case,
                    "expect": r.expect,
                    **({"harmless": True} if r.harmless else {}),
                }
                for n, r in zip(numbers, rows, strict=True)
            ],
        }

    def add_unreadable(self, name: str, content: bytes, case: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        self.files[name] = {
            "note": case,
            "unreadable_file": True,
            "rows": 0,
            "accepted": 0,
            "duplicates": 0,
            "rejected": 0,
            "rejected_by_reason": {},
            "accepted_quantity_sum": "0.000000",
            "cases": [{"row": None, "case": case, "expect": "unreadable_file"}],
        }


def event(eid: str, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": eid,
        "tenant_id": "acme",
        "metric": "api.calls",
        "quantity": "1.5",
        "occurred_at": TS,
    }
    return base | over


def line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class Ids:
    """Unique event ids per file: `<stem>-<n>`."""

    def __init__(self, stem: str) -> None:
        self.stem, self.n = stem, 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.stem}-{self.n:03d}"


def good(ids: Ids, case: str = "good row", **over: Any) -> Row:
    obj = event(ids(), **over)
    return Row(line(obj), OK, case, str(obj["quantity"]))


def bad(ids: Ids, expect: str, case: str, **over: Any) -> Row:
    return Row(line(event(ids(), **over)), expect, case)


def raw(
    data: bytes | str, expect: str, case: str, quantity: str | None = None, harmless: bool = False
) -> Row:
    return Row(data.encode() if isinstance(data, str) else data, expect, case, quantity, harmless)


def jsonl(rows: list[Row], sep: bytes = b"\n", trailing: bool = True) -> bytes:
    return sep.join(r.data for r in rows) + (sep if trailing else b"")


def gz(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as out:
        out.write(data)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- JSON Lines


def json_structure(c: Corpus) -> None:
    ids = Ids("structure")
    rows = [
        good(ids),
        raw("this is not json", "malformed_row", "not JSON at all"),
        raw(
            '{"event_id": "structure-x1", "tenant_id": "acme", ',
            "malformed_row",
            "truncated JSON object",
        ),
        raw("[1, 2, 3]", "malformed_row", "JSON array, not an object"),
        raw('"just a string"', "malformed_row", "JSON string, not an object"),
        raw("42", "malformed_row", "JSON number, not an object"),
        raw("null", "malformed_row", "JSON null, not an object"),
        raw(
            line(event("structure-x2")).decode() + " trailing",
            "malformed_row",
            "an object followed by garbage",
        ),
        raw(
            "{'event_id': 'structure-x3', 'tenant_id': 'acme'}",
            "malformed_row",
            "single-quoted pseudo JSON",
        ),
        raw(
            '{"event_id":"structure-x4","tenant_id":"acme","metric":"api.calls",'
            '"quantity":NaN,"occurred_at":"2026-10-05T10:00:00Z"}',
            "invalid_quantity",
            "NaN literal (not JSON, but what Python's json.dumps writes): not finite",
        ),
        raw(
            '{"event_id":"structure-x5","tenant_id":"acme","metric":"api.calls",'
            '"quantity":Infinity,"occurred_at":"2026-10-05T10:00:00Z"}',
            "invalid_quantity",
            "Infinity literal (not JSON, but what Python's json.dumps writes): not finite",
        ),
        raw(
            b'{"event_id":"structure-x6","tenant_id":"acme","metric":"api.calls",'
            b'"quantity":"1","occurred_at":"2026-10-05T10:00:00Z","properties":{"k":"a\x00b"}}',
            "malformed_row",
            "raw NUL byte inside a JSON string (control characters must be escaped)",
        ),
        raw(
            b'{"event_id":"structure-\xff\xfe","tenant_id":"acme","metric":"api.calls",'
            b'"quantity":"1","occurred_at":"2026-10-05T10:00:00Z"}',
            "malformed_row",
            "invalid UTF-8 in the line",
        ),
        raw(
            '{"event_id":"structure-x7","tenant_id":"acme","metric":"api.calls",'
            '"quantity":"1","quantity":"2","occurred_at":"2026-10-05T10:00:00Z"}',
            "malformed_row",
            "duplicate key with different values: ambiguous, never billed",
        ),
        good(ids, "good row after the bad ones", quantity=2),
    ]
    c.add("jsonl/structure.jsonl", jsonl(rows), rows, note="rows that are not (valid) JSON objects")


def json_fields(c: Corpus) -> None:
    ids = Ids("fields")
    e = event
    rows = [
        good(ids),
        Row(
            line({k: v for k, v in e(ids()).items() if k != "event_id"}),
            "missing_field",
            "event_id key absent",
        ),
        Row(
            line({k: v for k, v in e(ids()).items() if k != "occurred_at"}),
            "missing_field",
            "occurred_at key absent",
        ),
        Row(line({}), "missing_field", "empty object"),
        bad(ids, "missing_field", "quantity is JSON null", quantity=None),
        bad(ids, "missing_field", "tenant_id is JSON null", tenant_id=None),
        Row(line(e("", quantity="1")), "invalid_event_id", "event_id empty string"),
        Row(line(e("   ")), "invalid_event_id", "event_id blank"),
        Row(line(e("f" * 129)), "invalid_event_id", "event_id 129 characters"),
        Row(line(e("f" * 128)), OK, "event_id exactly 128 characters (valid)", "1.5"),
        Row(line(e(12345)), "invalid_event_id", "event_id is a number, not a string"),
        bad(ids, "invalid_tenant_id", "tenant_id with a space", tenant_id="acme corp"),
        bad(ids, "invalid_tenant_id", "tenant_id starting with '-'", tenant_id="-acme"),
        bad(ids, "invalid_tenant_id", "tenant_id 65 characters", tenant_id="t" * 65),
        good(ids, "tenant_id exactly 64 characters (valid)", tenant_id="t" * 64),
        bad(ids, "invalid_tenant_id", "tenant_id non-ASCII", tenant_id="t\u00e9nant"),
        bad(
            ids,
            "invalid_tenant_id",
            "tenant_id SQL injection",
            tenant_id="x'; DROP TABLE usage_daily;--",
        ),
        bad(ids, "invalid_tenant_id", "tenant_id with an escaped NUL", tenant_id="acme\u0000"),
        bad(ids, "invalid_tenant_id", "tenant_id is a number", tenant_id=42),
        bad(ids, "invalid_metric", "metric upper case", metric="API.Calls"),
        bad(ids, "invalid_metric", "metric starting with a digit", metric="9lives"),
        bad(ids, "invalid_metric", "metric with '-'", metric="api-calls"),
        bad(ids, "invalid_metric", "metric 65 characters", metric="m" * 65),
        good(ids, "metric exactly 64 characters (valid)", metric="m" * 64),
        bad(ids, "invalid_metric", "metric is an array", metric=["api.calls"]),
        good(
            ids,
            "properties nested object (valid)",
            properties={"a": {"b": [1, 2, {"c": None}]}, "s": "caf\u00e9"},
        ),
        good(ids, "good row at the end", quantity="3"),
    ]
    c.add(
        "jsonl/fields.jsonl",
        jsonl(rows),
        rows,
        note="missing fields, ids at and over their limits, wrong id types",
    )


def json_quantities(c: Corpus) -> None:
    ids = Ids("qty")

    def q(value: Any, expect: str, case: str, accepted: str | None = None) -> Row:
        return Row(line(event(ids(), quantity=value)), expect, case, accepted)

    rows = [
        q(1, OK, "integer number", "1"),
        q("NaN", "invalid_quantity", "string NaN"),
        q("Infinity", "invalid_quantity", "string Infinity"),
        q("-Infinity", "invalid_quantity", "string -Infinity"),
        raw(
            line(event(ids())).decode().replace('"quantity":"1.5"', '"quantity":1e400'),
            "quantity_too_large",
            "1e400: a finite decimal far over 1e12",
        ),
        q("1e400", "quantity_too_large", "string 1e400"),
        raw(
            line(event(ids())).decode().replace('"quantity":"1.5"', '"quantity":-0'),
            OK,
            "negative zero (= 0, valid)",
            "0",
        ),
        q("-0.000000", OK, "string negative zero (= 0, valid)", "0"),
        q("123456789012345678901234567890", "quantity_too_large", "30-digit integer"),
        q(
            "0.123456789012345678901234567890",
            OK,
            "30 decimals: rounded half-even to 0.123457",
            "0.123456789012345678901234567890",
        ),
        q("2.0000005", OK, "half-even tie rounds to even: 2.000000", "2.0000005"),
        q("2.0000015", OK, "half-even tie rounds to even: 2.000002", "2.0000015"),
        raw(
            line(event(ids()))
            .decode()
            .replace('"quantity":"1.5"', '"quantity":0.1234567890123456789'),
            OK,
            "JSON number with 19 decimals: exact, not via float",
            "0.1234567890123456789",
        ),
        q(-1, "negative_quantity", "negative integer"),
        q("-0.000001", "negative_quantity", "smallest negative"),
        q(1000000000000, OK, "exactly 1e12 (the limit, valid)", "1000000000000"),
        q("1000000000000.000001", "quantity_too_large", "1e12 + 1e-6"),
        q(1000000000001, "quantity_too_large", "1e12 + 1"),
        q(True, "invalid_quantity", "boolean"),
        q({"v": 1}, "invalid_quantity", "object"),
        q([1], "invalid_quantity", "array"),
        q("", "invalid_quantity", "empty string"),
        q("abc", "invalid_quantity", "letters"),
        q("1,5", "invalid_quantity", "decimal comma"),
        q("0x1A", "invalid_quantity", "hexadecimal"),
        q("1.2.3", "invalid_quantity", "two points"),
        q("1e3", OK, "numeric string with an exponent (= 1000)", "1000"),
        q(".5", OK, "no leading digit (= 0.5)", "0.5"),
    ]
    c.add(
        "jsonl/quantities.jsonl",
        jsonl(rows),
        rows,
        note="every rule of quantity, exact decimal parsing and half-even rounding",
    )


def json_timestamps(c: Corpus) -> None:
    ids = Ids("ts")

    def t(value: Any, expect: str, case: str, harmless: bool = False) -> Row:
        return Row(
            line(event(ids(), occurred_at=value)),
            expect,
            case,
            "1.5" if expect == OK else None,
            harmless,
        )

    rows = [
        t("2026-10-05T10:00:00Z", OK, "Z"),
        t("2026-10-05T23:30:00-08:00", OK, "offset crossing UTC midnight (UTC day 10-06)"),
        t("2026-10-01T02:00:00+05:30", OK, "offset crossing back a day and a month"),
        t("2026-10-05T10:00:00.123456Z", OK, "microseconds"),
        t("2026-10-05T10:00:00.123456789Z", OK, "nanoseconds (truncated to microseconds)"),
        t(1790000000, OK, "epoch seconds"),
        t(1790000000.5, OK, "epoch seconds with a fraction"),
        t("2026-10-05t10:00:00z", OK, "lower-case t and z (RFC 3339 allows them)", True),
        t("2026-10-05T10:00:00", "naive_timestamp", "no offset"),
        t("2026-10-05T10:00:00.5", "naive_timestamp", "no offset, with a fraction"),
        t("2026-02-30T10:00:00Z", "invalid_timestamp", "February 30"),
        t("2026-10-05T24:00:00Z", "invalid_timestamp", "24:00"),
        t("2026-10-05T10:61:00Z", "invalid_timestamp", "minute 61"),
        t("2026-13-01T00:00:00Z", "invalid_timestamp", "month 13"),
        t("2026-10-05T10:00:00+25:00", "invalid_timestamp", "offset +25:00"),
        t("yesterday", "invalid_timestamp", "words"),
        t("", "invalid_timestamp", "empty string"),
        t(True, "invalid_timestamp", "boolean"),
        t("1970-01-01T00:00:00Z", "invalid_timestamp", "far past: before 2000"),
        t(0, "invalid_timestamp", "epoch 0: before 2000"),
        t("0001-01-01T00:00:00Z", "invalid_timestamp", "year 1"),
        t("2999-01-01T00:00:00Z", "future_timestamp", "far future"),
        t("9999-12-31T23:59:59Z", "future_timestamp", "the last second of year 9999"),
        t(32503680000, "future_timestamp", "epoch in year 3000"),
    ]
    c.add(
        "jsonl/timestamps.jsonl",
        jsonl(rows),
        rows,
        note="occurred_at: offsets, epochs, impossible dates, naive, far past and future",
    )


def json_duplicates(c: Corpus) -> None:
    base = event("dup-1", quantity="1.50", occurred_at="2026-10-05T10:00:00Z")
    rows = [
        Row(line(base), OK, "original", "1.50"),
        Row(line(base), DUP, "exact copy"),
        Row(
            line(base | {"occurred_at": "2026-10-05T12:00:00+02:00"}),
            DUP,
            "same instant written with an offset",
        ),
        Row(line(base | {"occurred_at": EPOCH_TS}), DUP, "same instant as epoch seconds"),
        Row(line(base | {"quantity": 1.5}), DUP, "same quantity as a number"),
        Row(
            line(base | {"properties": {"note": "resent"}}),
            DUP,
            "same key, metric, quantity and time; other properties",
        ),
        Row(line(base | {"quantity": "2"}), "conflicting_duplicate", "other quantity"),
        Row(line(base | {"metric": "storage.gb_hours"}), "conflicting_duplicate", "other metric"),
        Row(
            line(base | {"occurred_at": "2026-10-05T10:00:01Z"}),
            "conflicting_duplicate",
            "other time",
        ),
        Row(line(base | {"tenant_id": "globex"}), OK, "same event_id, another tenant", "1.50"),
        Row(line(base | {"event_id": "DUP-1"}), OK, "event_id differing in case only", "1.50"),
        Row(line(base | {"event_id": "dup-1 "}), OK, "event_id with a trailing space", "1.50"),
        Row(
            line(base | {"quantity": "-1"}),
            "negative_quantity",
            "a bad row with the same key is rejected for its own reason",
        ),
    ]
    c.add(
        "jsonl/duplicates.jsonl",
        jsonl(rows),
        rows,
        note="idempotency key (tenant_id, event_id): duplicates and conflicts in one file",
    )


def json_encodings(c: Corpus) -> None:
    ids = Ids("bom")
    rows = [good(ids, "first row after a UTF-8 BOM", quantity="1"), good(ids), good(ids)]
    rows[0].harmless = True
    c.add("jsonl/bom.jsonl", b"\xef\xbb\xbf" + jsonl(rows), rows, note="UTF-8 BOM")

    ids = Ids("crlf")
    rows = [
        good(ids),
        bad(ids, "negative_quantity", "bad row between CRLF lines", quantity="-2"),
        good(ids),
    ]
    for r in rows:
        r.harmless = r.expect == OK
    c.add("jsonl/crlf.jsonl", jsonl(rows, sep=b"\r\n"), rows, note="CRLF line endings")

    ids = Ids("blank")
    rows = [good(ids), good(ids), good(ids)]
    content = rows[0].data + b"\n\n   \n" + rows[1].data + b"\n\t\n" + rows[2].data
    c.add(
        "jsonl/blank-lines-no-final-newline.jsonl",
        content,
        rows,
        row_numbers=[1, 4, 6],
        note="blank lines are not rows; no newline at the end of the file (harmless)",
    )

    ids = Ids("ndjson")
    rows = [good(ids), bad(ids, "invalid_metric", "bad metric", metric="Bad")]
    c.add("jsonl/other-extension.ndjson", jsonl(rows), rows, note=".ndjson extension")


def gzip_files(c: Corpus) -> None:
    ids = Ids("gzok")
    rows = [
        good(ids),
        bad(ids, "naive_timestamp", "naive", occurred_at="2026-10-05T10:00:00"),
        good(ids),
    ]
    c.add("gzip/good.jsonl.gz", gz(jsonl(rows)), rows, note="gzip JSON Lines")

    ids = Ids("gzmulti")
    rows = [good(ids), good(ids), good(ids), good(ids)]
    content = gz(jsonl(rows[:2])) + gz(jsonl(rows[2:]))
    for r in rows:
        r.harmless = True
    c.add(
        "gzip/multi-member.jsonl.gz",
        content,
        rows,
        note="two gzip members concatenated (valid gzip: all rows count)",
    )

    ids = Ids("gztrunc")
    whole = gz(jsonl([good(ids) for _ in range(200)]))
    c.add_unreadable("gzip/truncated.jsonl.gz", whole[: len(whole) // 2], "gzip cut in the middle")
    c.add_unreadable("gzip/not-gzip.jsonl.gz", jsonl([good(Ids("notgz"))]), "plain text named .gz")
    c.add_unreadable("gzip/zero-byte.csv.gz", b"", "zero-byte gzip")


# ---------------------------------------------------------------------------------- CSV

HEADER = "event_id,tenant_id,metric,quantity,occurred_at,properties"


def csv_files(c: Corpus) -> None:
    records: list[tuple[str, ...]] = [
        ("csv-001,acme,api.calls,1.5,2026-10-05T10:00:00Z,", OK, "good row", "1.5"),
        (
            'csv-002,acme,api.calls,2,2026-10-05T10:00:00Z,"{""a"":""one"",\n""b"":""two""}"',
            OK,
            "quoted newline inside properties (JSON whitespace)",
            "2",
        ),
        (
            'csv-003,acme,api.calls,"1,5",2026-10-05T10:00:00Z,',
            "invalid_quantity",
            "quoted decimal comma",
        ),
        ("csv-004,,api.calls,1,2026-10-05T10:00:00Z,", "missing_field", "empty tenant_id cell"),
        ("csv-005,acme,api.calls,1", "missing_field", "record with too few cells"),
        ("csv-006,acme,api.calls,-3,2026-10-05T10:00:00Z,", "negative_quantity", "negative"),
        ("csv-007,acme,api.calls,1,1790000000,", OK, "epoch seconds in a cell", "1"),
        ("csv-008,acme,api.calls,1,2026-10-05 10:00:00,", "naive_timestamp", "naive with a space"),
        ("csv-009,acme,API,1,2026-10-05T10:00:00Z,", "invalid_metric", "upper-case metric"),
        (
            f"{'c' * 129},acme,api.calls,1,2026-10-05T10:00:00Z,",
            "invalid_event_id",
            "event_id 129 characters",
        ),
        (
            'csv-010,acme,api.calls,"0.0000005",2026-10-05T10:00:00Z,',
            OK,
            "half-even tie to 0.000000",
            "0.0000005",
        ),
        ("csv-011,acme,api.calls,3,2026-10-05T10:00:00Z,", OK, "good row at the end", "3"),
    ]
    rows = [Row(r[0].encode(), r[1], r[2], r[3] if len(r) > 3 else None) for r in records]
    c.add(
        "csv/mixed.csv",
        (HEADER + "\n" + "\n".join(r[0] for r in records) + "\n").encode(),
        rows,
        first_row=2,
        note="CSV with bad cells and a quoted newline (a record is a row)",
    )

    ids = Ids("csvcols")
    rows = [
        Row(
            f"{ids()},acme,api.calls,1,{TS},,eu-west-1".encode(),
            OK,
            "extra column 'region'",
            "1",
            True,
        ),
        Row(
            f"{ids()},acme,api.calls,2,{TS},,us-east-1".encode(),
            OK,
            "extra column 'region'",
            "2",
            True,
        ),
    ]
    c.add(
        "csv/extra-column.csv",
        (HEADER + ",region\n" + "\n".join(r.data.decode() for r in rows)).encode(),
        rows,
        first_row=2,
        note="an extra column is ignored (harmless)",
    )

    ids = Ids("csvmiss")
    rows = [
        Row(f"{ids()},acme,1,{TS}".encode(), "missing_field", "no metric column") for _ in range(2)
    ]
    c.add(
        "csv/missing-column.csv",
        (
            "event_id,tenant_id,quantity,occurred_at\n"
            + "\n".join(r.data.decode() for r in rows)
            + "\n"
        ).encode(),
        rows,
        first_row=2,
        note="the header lacks a required column: every row misses it",
    )

    ids = Ids("csvorder")
    rows = [
        Row(f"{TS},1,api.calls,acme,{ids()}".encode(), OK, "columns in another order", "1", True)
    ]
    c.add(
        "csv/reordered.csv",
        (
            "occurred_at,quantity,metric,tenant_id,event_id\n" + rows[0].data.decode() + "\n"
        ).encode(),
        rows,
        first_row=2,
        note="columns are matched by header name",
    )

    ids = Ids("csvbom")
    rows = [
        Row(f"{ids()},acme,api.calls,1,{TS},".encode(), OK, "BOM before the header", "1", True),
        Row(f"{ids()},acme,api.calls,x,{TS},".encode(), "invalid_quantity", "letters"),
    ]
    c.add(
        "csv/bom-crlf.csv",
        b"\xef\xbb\xbf"
        + (HEADER + "\r\n" + "\r\n".join(r.data.decode() for r in rows) + "\r\n").encode(),
        rows,
        first_row=2,
        note="BOM and CRLF (harmless)",
    )

    c.add("csv/header-only.csv", (HEADER + "\n").encode(), [], note="no rows at all")

    ids = Ids("csvgz")
    rows = [
        Row(f"{ids()},acme,api.calls,1,{TS},".encode(), OK, "gzip CSV", "1"),
        Row(f"{ids()},acme,api.calls,1".encode(), "missing_field", "record cut short"),
    ]
    c.add(
        "csv/good.csv.gz",
        gz((HEADER + "\n" + "\n".join(r.data.decode() for r in rows) + "\n").encode()),
        rows,
        first_row=2,
        note="gzip CSV",
    )


# ------------------------------------------------------------------------------ Parquet


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def parquet_files(c: Corpus) -> None:
    frame = pl.DataFrame(
        {
            "event_id": ["pq-001", "pq-002", "pq-003", "pq-004", "pq-005"],
            "tenant_id": ["acme", "acme", "acme", "acme", "acme"],
            "metric": ["api.calls"] * 5,
            "quantity": [1.5, float("nan"), float("inf"), -1.0, 2.25],
            "occurred_at": [TS] * 5,
        }
    )
    rows = [
        Row(b"", OK, "float64 quantity", "1.5"),
        Row(b"", "invalid_quantity", "NaN in a float column"),
        Row(b"", "invalid_quantity", "inf in a float column"),
        Row(b"", "negative_quantity", "negative float"),
        Row(b"", OK, "float64 quantity", "2.25"),
    ]
    c.add(
        "parquet/float-quantity.parquet", parquet_bytes(frame), rows, note="quantity typed float64"
    )

    typed = pl.DataFrame(
        {
            "event_id": ["pqt-001", "pqt-002"],
            "tenant_id": ["acme", "acme"],
            "metric": ["api.calls", "api.calls"],
            "quantity": ["1", "2"],
            "occurred_at": pl.Series(
                ["2026-10-05T10:00:00", "2026-10-06T23:59:59"]
            ).str.to_datetime("%Y-%m-%dT%H:%M:%S", time_zone="UTC"),
            "properties": pl.Series([{"k": "v"}, None], dtype=pl.Struct({"k": pl.String})),
        }
    )
    rows = [
        Row(b"", OK, "timestamp[us, UTC] column, struct properties", "1"),
        Row(b"", OK, "timestamp[us, UTC] column, null properties", "2"),
    ]
    c.add(
        "parquet/typed-timestamps.parquet",
        parquet_bytes(typed),
        rows,
        note="typed UTC timestamps and struct properties (valid)",
    )

    naive = typed.with_columns(
        pl.col("occurred_at").dt.replace_time_zone(None),
        pl.Series("event_id", ["pqn-001", "pqn-002"]),
    )
    rows = [Row(b"", "naive_timestamp", "timestamp column without a time zone")] * 2
    c.add(
        "parquet/naive-timestamps.parquet",
        parquet_bytes(naive),
        rows,
        note="wrong column type: naive timestamps (whole column)",
    )

    wrong = pl.DataFrame(
        {
            "event_id": ["pqw-001", "pqw-002"],
            "tenant_id": ["acme", "acme"],
            "metric": ["api.calls", "api.calls"],
            "quantity": [True, False],
            "occurred_at": [TS, TS],
        }
    )
    rows = [Row(b"", "invalid_quantity", "boolean quantity column")] * 2
    c.add(
        "parquet/bool-quantity.parquet",
        parquet_bytes(wrong),
        rows,
        note="wrong column type: boolean quantity (whole column)",
    )

    ints = pl.DataFrame(
        {
            "event_id": ["pqi-001", "pqi-002"],
            "tenant_id": [1, 2],
            "metric": ["api.calls", "api.calls"],
            "quantity": ["1", "1"],
            "occurred_at": [TS, TS],
        }
    )
    rows = [Row(b"", "invalid_tenant_id", "integer tenant_id column")] * 2
    c.add(
        "parquet/int-tenant.parquet",
        parquet_bytes(ints),
        rows,
        note="wrong column type: integer tenant_id (whole column)",
    )

    missing = wrong.drop("metric").with_columns(
        pl.Series("quantity", ["1", "1"]), pl.Series("event_id", ["pqm-001", "pqm-002"])
    )
    rows = [Row(b"", "missing_field", "no metric column")] * 2
    c.add(
        "parquet/missing-column.parquet",
        parquet_bytes(missing),
        rows,
        note="a required column is absent",
    )

    c.add_unreadable(
        "parquet/not-parquet.parquet", b"PAR1 this is not a parquet file", "garbage named .parquet"
    )
    c.add_unreadable("parquet/zero-byte.parquet", b"", "zero-byte .parquet")
    good_bytes = parquet_bytes(frame)
    c.add_unreadable(
        "parquet/truncated.parquet",
        good_bytes[: len(good_bytes) // 2],
        "Parquet cut in the middle (no footer)",
    )


def other_files(c: Corpus) -> None:
    c.add("jsonl/zero-byte.jsonl", b"", [], note="zero-byte file: readable, no rows")
    (c.root / "misc").mkdir(parents=True, exist_ok=True)
    (c.root / "misc" / "README.txt").write_text("not a usage file: ignored by its extension\n")
    c.ignored["misc/README.txt"] = "not a usage file type: ignored, not counted"


# --------------------------------------------------------------------- generated at test time


def write_big_line_file(directory: Path) -> dict[str, Any]:
    """A JSONL file with 10 MB lines between good rows (too big to commit): its expectations."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = Ids("big")
    rows = [
        good(ids),
        Row(line(event("b" * 10_000_000)), "invalid_event_id", "10 MB event_id"),
        good(ids, "good row between 10 MB lines"),
        Row(b"x" * 10_000_000, "malformed_row", "10 MB of non-JSON"),
        good(
            ids,
            "10 MB properties (valid: no size limit in the contract)",
            properties={"blob": "p" * 10_000_000},
        ),
        good(ids),
    ]
    corpus = Corpus(directory)
    corpus.add("big-lines.jsonl", jsonl(rows), rows, note="10 MB lines")
    return corpus.files["big-lines.jsonl"]


def build() -> Corpus:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    corpus = Corpus(OUT)
    for make in (
        json_structure,
        json_fields,
        json_quantities,
        json_timestamps,
        json_duplicates,
        json_encodings,
        gzip_files,
        csv_files,
        parquet_files,
        other_files,
    ):
        make(corpus)
    return corpus


def expectations(corpus: Corpus) -> dict[str, Any]:
    files = dict(sorted(corpus.files.items()))
    by_reason: dict[str, int] = {}
    for spec in files.values():
        for reason, count in spec["rejected_by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    total_sum = sum((Decimal(s["accepted_quantity_sum"]) for s in files.values()), Decimal(0))
    kinds = {
        case["case"]
        for s in files.values()
        for case in s["cases"]
        if case["expect"] != OK or case.get("harmless")
    }
    return {
        "about": "tests/data/make_hostile_corpus.py writes this; see its docstring",
        "kinds": len(kinds),
        "totals": {
            "files": len(files),
            "unreadable_files": sum(s["unreadable_file"] for s in files.values()),
            "rows": sum(s["rows"] for s in files.values()),
            "accepted": sum(s["accepted"] for s in files.values()),
            "duplicates": sum(s["duplicates"] for s in files.values()),
            "rejected": sum(by_reason.values()),
            "rejected_by_reason": dict(sorted(by_reason.items())),
            "accepted_quantity_sum": f"{total_sum.quantize(MICRO)}",
        },
        "ignored_files": corpus.ignored,
        "files": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=Path, help="Also write the 10 MB-line file here")
    args = parser.parse_args()
    corpus = build()
    payload = expectations(corpus)
    EXPECTATIONS.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {payload['totals']['files']} files, {payload['kinds']} kinds to {OUT}")
    if args.big:
        spec = write_big_line_file(args.big)
        (args.big / "big-lines.expectations.json").write_text(json.dumps(spec, indent=1) + "\n")
        print(f"wrote {args.big / 'big-lines.jsonl'}")


if __name__ == "__main__":
    main()
