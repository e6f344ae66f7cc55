"""Ingest cost flat with history (issue 12 item 3): landing files skipped by (path, size,
mtime) without reading them, dedupe against the key index (not the lake files), the
pushed-event inbox drained in chunks, day compaction, the pushed-event age bound and exact
decimal properties. Real Postgres, real DuckDB/Parquet lake, real Prefect flow runs."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from flows.backfill_usage import backfill_usage
from flows.ingest_usage import ingest_usage
from services.ingest.dedupe import key_hashes
from services.ingest.inbox import EVENT_TOO_OLD, push_events
from services.ingest.staging import pushed_event_chunks
from tallyflow.core import storage
from tallyflow.core.settings import Settings
from tests.helpers import ev, rows, usage, write_jsonl

pytestmark = pytest.mark.usefixtures("prefect_harness")

PUSHED_AT = dt.datetime(2026, 10, 20, 12, 0, tzinfo=dt.UTC)


def ingest(*paths: Path) -> dict[str, Any]:
    result: dict[str, Any] = ingest_usage(paths=[str(p) for p in paths] if paths else None)
    assert result["rows"] == result["accepted"] + result["duplicates"] + result["rejected"]
    return result


def _manifest(engine: Engine) -> list[tuple[Any, ...]]:
    return rows(engine, "SELECT path, usage_date, row_count FROM lake_files ORDER BY path")


def _on_disk(settings: Settings) -> set[str]:
    root = settings.lake_location.url
    events = storage.join(root, "events")
    return {storage.relative(e.url, root) for e in storage.list_files(events)}


def _indexed(engine: Engine) -> int:
    return int(rows(engine, "SELECT count(*) FROM event_keys")[0][0])


# --- 1. skip known landing files by (path, size, mtime) -------------------------------------


def test_a_known_file_is_skipped_by_its_stat_without_reading_it(
    settings: Settings, engine: Engine
) -> None:
    landing = settings.landing_path
    path = write_jsonl(landing / "a.jsonl", [ev(f"e{i}", quantity="1") for i in range(3)])
    other = write_jsonl(landing / "b.jsonl", [ev("f0", quantity="5")])
    first = ingest()
    assert (first["files"], first["accepted"]) == (2, 4)
    before = usage(engine)
    stat = path.stat()

    # new content, same size and mtime: not read (were it read, its new quantities would be
    # three conflicting duplicates)
    path.write_text(path.read_text().replace('"quantity": "1"', '"quantity": "2"'))
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = ingest()
    assert (second["files"], second["skipped_files"], second["rows"]) == (0, 2, 0)
    assert usage(engine) == before

    # the mtime changed: hashed and read as today (the content hash decides)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    third = ingest()
    assert third["files"] == 1
    assert third["rejected_by_reason"] == {"conflicting_duplicate": 3}
    assert usage(engine) == before

    # only the mtime of an already-ingested content changed: hashed, skipped, and its new
    # stat recorded (the next run does not hash it again)
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))
    fourth = ingest()
    assert (fourth["files"], fourth["skipped_files"]) == (0, 2)
    with engine.connect() as conn:
        recorded = conn.execute(
            sa.text("SELECT mtime_ns FROM landing_files WHERE path = :p"),
            {"p": str(other.resolve())},
        ).all()
    assert recorded == [(other.stat().st_mtime_ns,)]


# --- 2. dedupe against the key index ----------------------------------------------------------


def test_dedupe_reads_the_index_and_only_its_repeats_days(
    settings: Settings, engine: Engine
) -> None:
    """The committed lake is asked through the key index: a repeat's standing version is
    read from its own day's files; the other days' files are not read."""
    day1, day2, day3 = "2026-10-05T10:00:00Z", "2026-10-06T10:00:00Z", "2026-10-07T10:00:00Z"
    landing = settings.landing_path
    write_jsonl(
        landing / "run1.jsonl",
        [ev("e1", occurred_at=day1), ev("e2", occurred_at=day1), ev("e5", occurred_at=day3)],
    )
    assert ingest()["accepted"] == 3
    assert _indexed(engine) == 3
    # day 3's committed lake files are taken away: a dedupe that read every day would fail
    day3_folder = settings.lake_path / "events" / "usage_date=2026-10-07"
    hidden = settings.lake_path.parent / "hidden-day3"
    day3_folder.rename(hidden)
    try:
        write_jsonl(
            landing / "run2.jsonl",
            [
                ev("e1", occurred_at=day1),  # duplicate of run 1 (dropped)
                ev("e2", quantity="9", occurred_at=day2),  # conflict with run 1 (day 1)
                ev("e3", occurred_at=day2),  # new
                ev("e3", occurred_at=day2),  # duplicate within the run
                ev("e4", occurred_at=day2),  # new
                ev("e4", quantity="3", occurred_at=day2),  # conflict within the run
            ],
        )
        second = ingest()
    finally:
        hidden.rename(day3_folder)
    assert (second["accepted"], second["duplicates"]) == (2, 2)
    assert second["rejected_by_reason"] == {"conflicting_duplicate": 2}
    assert second["days"] == ["2026-10-06"]
    assert _indexed(engine) == 5
    expected = pl.DataFrame({"tenant_id": ["acme"] * 5, "event_id": ["e1", "e2", "e3", "e4", "e5"]})
    index = rows(engine, "SELECT key_hash, usage_date::text FROM event_keys")
    assert sorted(index) == sorted(
        zip(
            key_hashes(expected).to_list(),
            ["2026-10-05", "2026-10-05", "2026-10-06", "2026-10-06", "2026-10-07"],
            strict=True,
        )
    )
    assert usage(engine) == {
        ("acme", "api.calls", "2026-10-05"): (Decimal(2), 2, Decimal(1)),
        ("acme", "api.calls", "2026-10-06"): (Decimal(2), 2, Decimal(1)),
        ("acme", "api.calls", "2026-10-07"): (Decimal(1), 1, Decimal(1)),
    }
    # a pushed event repeating a file's event is a duplicate when drained (the index)
    with engine.begin() as conn:
        pushed = push_events(conn, [ev("e3", occurred_at=day2)], now=PUSHED_AT)
    assert pushed.accepted == 1
    drained = ingest()
    assert (drained["accepted"], drained["duplicates"]) == (0, 1)


def test_each_file_of_a_run_is_deduped_against_the_index_on_its_own(
    settings: Settings, engine: Engine
) -> None:
    """A run's second file is looked up in the index after its first: the first file's hits
    must not answer for the second file's keys (they once did: the lookup's scratch rows
    outlived it, and new events at the same positions came back as repeats)."""
    landing = settings.landing_path
    write_jsonl(landing / "a.jsonl", [ev(f"e{i}", quantity="1") for i in range(3)])
    assert ingest()["accepted"] == 3
    write_jsonl(landing / "b.jsonl", [ev(f"e{i}", quantity="1") for i in (2, 1, 0)])
    write_jsonl(landing / "c.jsonl", [ev(f"n{i}", quantity="2") for i in range(3)])
    second = ingest()
    assert (second["files"], second["accepted"], second["duplicates"]) == (2, 3, 3)
    assert second["rejected_by_reason"] == {}
    assert _indexed(engine) == 6


def test_legacy_lake_files_are_indexed_before_dedupe(settings: Settings, engine: Engine) -> None:
    """Files listed before migration 0008 (keys_indexed false) are indexed by the next run."""
    write_jsonl(settings.landing_path / "a.jsonl", [ev("e1"), ev("e2")])
    ingest()
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM event_keys"))
        conn.execute(sa.text("UPDATE lake_files SET keys_indexed = false"))
    write_jsonl(settings.landing_path / "b.jsonl", [ev("e1"), ev("e2", quantity="4")])
    result = ingest()
    assert (result["accepted"], result["duplicates"]) == (0, 1)
    assert result["rejected_by_reason"] == {"conflicting_duplicate": 1}
    assert _indexed(engine) == 2
    assert rows(engine, "SELECT count(*) FROM lake_files WHERE NOT keys_indexed") == [(0,)]


def test_the_hash_index_migration_rebuilds_the_index_from_the_lake(
    settings: Settings, engine: Engine
) -> None:
    """0014 (and its downgrade) change the index's shape, empty it and mark the lake
    unindexed; the next run rebuilds it from the lake files before it dedupes."""
    from tallyflow.core import migrate

    columns = sa.text(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = 'event_keys' ORDER BY ordinal_position"
    )
    write_jsonl(settings.landing_path / "a.jsonl", [ev("e1"), ev("e2")])
    ingest()
    migrate.downgrade(engine, "0013_lines_check_name")
    engine.dispose()
    assert [c for (c,) in rows(engine, columns.text)] == [
        "tenant_id",
        "event_id",
        "metric",
        "quantity_micros",
        "occurred_at",
    ]
    assert rows(engine, "SELECT count(*), bool_or(keys_indexed) FROM lake_files") == [(1, False)]
    migrate.upgrade(engine)
    engine.dispose()
    assert [c for (c,) in rows(engine, columns.text)] == ["key_hash", "usage_date"]
    assert _indexed(engine) == 0
    assert rows(engine, "SELECT count(*), bool_or(keys_indexed) FROM lake_files") == [(1, False)]
    write_jsonl(settings.landing_path / "b.jsonl", [ev("e1"), ev("e2", quantity="4"), ev("e3")])
    result = ingest()
    assert (result["accepted"], result["duplicates"]) == (1, 1)
    assert result["rejected_by_reason"] == {"conflicting_duplicate": 1}
    assert _indexed(engine) == 3
    assert rows(engine, "SELECT count(*) FROM lake_files WHERE NOT keys_indexed") == [(0,)]


# --- 3./4. the inbox: one rule, chunks --------------------------------------------------------


def test_the_inbox_is_drained_in_chunks(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [ev(f"p{i}", quantity=f"{i}.5") for i in range(5)]
    with engine.begin() as conn:
        outcome = push_events(conn, events, now=PUSHED_AT)
    assert outcome.accepted == 5
    assert [c.height for c in pushed_event_chunks(engine, 2)] == [2, 2, 1]
    assert [c.get_column("event_id").to_list() for c in pushed_event_chunks(engine, 2)] == [
        ["p0", "p1"],
        ["p2", "p3"],
        ["p4"],
    ]
    # a file brings p1 (same content: duplicate) and p3 (other content: conflict); the
    # file comes first, so its versions stand and the pushed ones are the repeats
    write_jsonl(
        settings.landing_path / "f.jsonl", [ev("p1", quantity="1.5"), ev("p3", quantity="7")]
    )
    monkeypatch.setenv("TALLYFLOW_INBOX_CHUNK_EVENTS", "2")
    result = ingest()
    assert (result["rows"], result["accepted"], result["duplicates"]) == (7, 5, 1)
    assert result["rejected_by_reason"] == {"conflicting_duplicate": 1}
    assert rows(engine, "SELECT count(*) FROM ingest_inbox WHERE drained_run_id IS NULL") == [(0,)]
    total = Decimal("0.5") + Decimal("1.5") + Decimal("2.5") + Decimal("7") + Decimal("4.5")
    assert usage(engine) == {("acme", "api.calls", "2026-10-05"): (total, 5, Decimal(7))}
    assert list(pushed_event_chunks(engine, 2)) == []


def test_push_uses_the_same_rule_within_a_batch_and_against_the_inbox(engine: Engine) -> None:
    with engine.begin() as conn:
        first = push_events(conn, [ev("a"), ev("a"), ev("b"), ev("b", quantity="2")], now=PUSHED_AT)
    assert (first.accepted, first.duplicates) == (2, 1)
    assert [(r.index, r.reason) for r in first.rejected] == [(3, "conflicting_duplicate")]
    with engine.begin() as conn:
        again = push_events(conn, [ev("b"), ev("a", quantity="3"), ev("c")], now=PUSHED_AT)
    assert (again.accepted, again.duplicates) == (1, 1)
    assert [(r.index, r.reason) for r in again.rejected] == [(1, "conflicting_duplicate")]


# --- 5. compaction ----------------------------------------------------------------------------


def test_a_day_with_too_many_files_is_compacted(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALLYFLOW_LAKE_COMPACT_DAY_FILES", "2")
    landing = settings.landing_path
    for run in range(2):
        write_jsonl(landing / f"r{run}.jsonl", [ev(f"r{run}-{i}", quantity="1") for i in range(3)])
        ingest(landing / f"r{run}.jsonl")
    assert len(_manifest(engine)) == 2  # not more than 2 files: left alone
    write_jsonl(
        landing / "r2.jsonl",
        [ev("r2-0", quantity="1"), ev("r2-1", quantity="2", occurred_at="2026-10-06T00:00:00Z")],
    )
    third = ingest(landing / "r2.jsonl")
    assert third["accepted"] == 2
    manifest = _manifest(engine)
    # 2026-10-05 had 2 committed files + 1 new: compacted into one file of 7 rows
    assert [(m[1].isoformat(), m[2]) for m in manifest] == [("2026-10-05", 7), ("2026-10-06", 1)]
    assert manifest[0][0].endswith("-compact.parquet")
    assert _on_disk(settings) == {m[0] for m in manifest}  # the old files are in the trash
    trash = storage.list_files(storage.join(settings.lake_location.url, "trash"))
    assert len([e for e in trash if e.url.endswith(".parquet")]) == 3
    assert _indexed(engine) == 8
    expected = {
        ("acme", "api.calls", "2026-10-05"): (Decimal(7), 7, Decimal(1)),
        ("acme", "api.calls", "2026-10-06"): (Decimal(2), 1, Decimal(2)),
    }
    assert usage(engine) == expected
    # a rerun finds nothing new and changes nothing; a backfill reads the compacted file
    assert ingest()["rows"] == 0
    assert _manifest(engine) == manifest and usage(engine) == expected
    backfill_usage(start="2026-10-05", end="2026-10-06")
    assert usage(engine) == expected
    # the next run on that day adds one file (2 files: within the bound)
    write_jsonl(landing / "r3.jsonl", [ev("r3-0", quantity="1")])
    ingest(landing / "r3.jsonl")
    assert len(_manifest(engine)) == 3


# --- 6./7. pushed events: age bound, exact properties -----------------------------------------


def test_pushed_events_older_than_the_bound_are_rejected(engine: Engine) -> None:
    old = (PUSHED_AT - dt.timedelta(days=31)).isoformat().replace("+00:00", "Z")
    recent = (PUSHED_AT - dt.timedelta(days=29)).isoformat().replace("+00:00", "Z")
    ancient = "2001-01-02T00:00:00Z"  # valid (after 2000), 25 years back
    events = [ev("old", occurred_at=old), ev("recent", occurred_at=recent)]
    events.append(ev("ancient", occurred_at=ancient))
    with engine.begin() as conn:
        outcome = push_events(conn, events, now=PUSHED_AT, max_age_days=30)
    assert outcome.accepted == 1
    assert [(r.index, r.event_id, r.reason) for r in outcome.rejected] == [
        (0, "old", EVENT_TOO_OLD),
        (2, "ancient", EVENT_TOO_OLD),
    ]
    with engine.begin() as conn:
        default = push_events(conn, [ev("ancient", occurred_at=ancient)], now=PUSHED_AT)
    assert [r.reason for r in default.rejected] == [EVENT_TOO_OLD]


def test_pushed_properties_keep_exact_decimals(engine: Engine) -> None:
    body = (
        '{"event_id": "x", "tenant_id": "acme", "metric": "api.calls", "quantity": "1",'
        ' "occurred_at": "2026-10-05T10:00:00Z",'
        ' "properties": {"ratio": 0.12345678901234567890123, "n": [1, 2.50], "s": "t"}}'
    )
    event = json.loads(body, parse_float=Decimal)
    with engine.begin() as conn:
        assert push_events(conn, [event], now=PUSHED_AT).accepted == 1
    stored = rows(engine, "SELECT properties->>'ratio', properties->'n' FROM ingest_inbox")
    assert stored[0][0] == "0.12345678901234567890123"
    assert stored[0][1] == [1, Decimal("2.50")] or stored[0][1] == [1, 2.5]
