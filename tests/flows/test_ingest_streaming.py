"""The ingest flow reads files in bounded batches, and a file that fails in any way while
being read (a gzip bomb over the cap, MemoryError, OSError, an unexpected exception, a name
too long for the quarantine folder) is quarantined with a reason while the other files
and the pushed events go on."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from flows.ingest_usage import ingest_usage
from services.ingest.inbox import push_events
from tallyflow.core.settings import Settings
from tests.helpers import ev, usage, write_jsonl

pytestmark = pytest.mark.usefixtures("prefect_harness")

PUSHED_AT = dt.datetime(2026, 10, 6, tzinfo=dt.UTC)


def _push(engine: Engine) -> None:
    with engine.begin() as conn:
        outcome = push_events(conn, [ev("pushed-1", quantity="7")], now=PUSHED_AT)
    assert outcome.accepted == 1


def _ledger(engine: Engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT path, status FROM ingest_files")).all()
        details = conn.execute(
            sa.text("SELECT source, detail FROM rejected_rows WHERE reason = 'unreadable_file'")
        ).all()
    why = dict(details)
    return {Path(r.path).name: (r.status, why.get(r.path)) for r in rows}


def test_gzip_bomb_quarantined_others_and_inbox_go_on(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALLYFLOW_INGEST_MAX_DECOMPRESSED_BYTES", str(1 << 20))
    landing = settings.landing_path
    line = json.dumps(ev("bomb")).encode() + b"\n"
    (landing / "bomb.jsonl.gz").write_bytes(gzip.compress(line * 100_000, compresslevel=9))
    write_jsonl(landing / "ok.jsonl", [ev("e1", quantity="2.5")])
    _push(engine)
    result = ingest_usage()
    assert result["accepted"] == 2
    assert result["rejected_by_reason"] == {"unreadable_file": 1}
    ledger = _ledger(engine)
    assert ledger["ok.jsonl"] == ("ingested", None)
    status, detail = ledger["bomb.jsonl.gz"]
    assert status == "quarantined"
    assert detail is not None and "decompressed size over the cap of 1,048,576 bytes" in detail
    assert usage(engine)[("acme", "api.calls", "2026-10-05")][0] == Decimal("9.5")


@pytest.mark.parametrize("kind", ["MemoryError", "OSError", "RuntimeError"])
def test_failure_while_reading_one_file_quarantines_it(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    landing = settings.landing_path
    write_jsonl(landing / "a.jsonl", [ev("a1")])
    write_jsonl(landing / "b.jsonl", [ev("b1")])
    write_jsonl(landing / "c.jsonl", [ev("c1")])
    _push(engine)
    monkeypatch.setenv("TALLYFLOW_FAULT_RAISE_AT", f"ingest.read_batch:b.jsonl={kind}")
    result = ingest_usage()
    assert result["accepted"] == 3  # a1, c1 and the pushed event
    assert result["rejected_by_reason"] == {"unreadable_file": 1}
    status, detail = _ledger(engine)["b.jsonl"]
    assert status == "quarantined" and detail is not None and kind in detail
    assert len(list((settings.lake_path / "quarantine").iterdir())) == 1


def test_name_too_long_for_the_quarantine_folder(settings: Settings, engine: Engine) -> None:
    landing = settings.landing_path
    name = "é" * 60 + "x" * (255 - 120 - len(".jsonl.gz")) + ".jsonl.gz"  # 255 bytes
    assert len(name.encode()) == 255
    (landing / name).write_bytes(b"\x1f\x8b not really gzip")
    write_jsonl(landing / "ok.jsonl", [ev("e1")])
    _push(engine)
    result = ingest_usage()
    assert result["accepted"] == 2
    assert result["rejected_by_reason"] == {"unreadable_file": 1}
    assert _ledger(engine)[name][0] == "quarantined"
    (kept,) = (settings.lake_path / "quarantine").iterdir()
    assert len(kept.name.encode()) <= 255 and kept.name.endswith(".jsonl.gz")
    assert kept.read_bytes() == (landing / name).read_bytes()


def test_big_file_in_many_batches_and_spooled_parts(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALLYFLOW_INGEST_BATCH_BYTES", "4096")
    monkeypatch.setenv("TALLYFLOW_INGEST_SPOOL_ROWS", "100")
    landing = settings.landing_path
    events: list[dict[str, object] | str] = [ev(f"e{i}", quantity="1.25") for i in range(1000)]
    events[500] = "not json"
    events[700] = ev("e3", quantity="2")  # a conflicting repeat of line 4, 3 spools later
    write_jsonl(landing / "big.jsonl.gz", events, gz=True)
    result = ingest_usage()
    assert (result["rows"], result["accepted"], result["rejected"]) == (1000, 998, 2)
    with engine.connect() as conn:
        rejected = conn.execute(
            sa.text("SELECT line_no, reason, raw FROM rejected_rows ORDER BY line_no")
        ).all()
    assert [(r.line_no, r.reason) for r in rejected] == [
        (501, "malformed_row"),
        (701, "conflicting_duplicate"),
    ]
    assert bytes(rejected[0].raw) == b"not json"
    assert json.loads(bytes(rejected[1].raw))["event_id"] == "e3"
    assert usage(engine)[("acme", "api.calls", "2026-10-05")][:2] == (Decimal("1247.5"), 998)


def test_bad_lines_holding_nul_bytes_are_rejected_and_the_run_commits(
    settings: Settings, engine: Engine
) -> None:
    # Postgres text and jsonb cannot hold U+0000: the rejected rows, the run's summary and
    # its examples must still be written (the byte shown as U+2400), not fail the commit.
    good = json.dumps(ev("e1", quantity="2")).encode()
    bad = b'{"event_id": "x\x00y", "tenant_id": "t\x00", '
    nul_escaped = json.dumps(ev("e2")).replace('"e2"', '"e\\u0000"').encode()
    (settings.landing_path / "nul.jsonl").write_bytes(b"\n".join([good, bad, nul_escaped]) + b"\n")
    result = ingest_usage()
    assert result["accepted"] == 2  # an event_id may hold U+0000 (the key index is bytea)
    assert result["rejected_by_reason"] == {"malformed_row": 1}
    with engine.connect() as conn:
        lines = conn.execute(
            sa.text("SELECT line_no FROM rejected_rows ORDER BY line_no")
        ).scalars()
        assert list(lines) == [2]
        (summary,) = conn.execute(
            sa.text("SELECT summary::text FROM job_runs WHERE job = 'ingest_usage'")
        ).one()
    assert "\x00" not in summary and "\\u0000" not in summary and "\u2400" in summary
