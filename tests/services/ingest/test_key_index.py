"""The key index (services/ingest/dedupe.py `KeyIndex`, `key_hashes`, `index_new_events`)
against a real Postgres and real lake files: the hash is md5's, each lookup answers for its
own batch only, a shared hash is only a candidate, and a lookup reads only its matches' days."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

import duckdb
import polars as pl
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.ingest import lake
from services.ingest.dedupe import (
    INDEX_SCHEMA,
    KEY,
    KEY_HASH,
    VERSION_SCHEMA,
    IndexWriter,
    KeyIndex,
    index_new_events,
    key_hashes,
)
from services.job_runs import start_job_run
from tallyflow.core.db import driver_connection
from tallyflow.core.settings import Settings
from tests.services.metrics.lake_helpers import lake_frame

DAY1 = dt.datetime(2026, 10, 3, 12, 0, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 10, 4, 9, 30, tzinfo=dt.UTC)


def _reference_hash(tenant_id: str, event_id: str) -> int:
    """md5(tenant_id NUL event_id), first 8 bytes little-endian, shifted to a signed bigint."""
    digest = hashlib.md5(tenant_id.encode() + b"\x00" + event_id.encode()).digest()
    return int.from_bytes(digest[:8], "little") - 2**63


def _events(rows: list[tuple[str, str, str, int, dt.datetime]]) -> pl.DataFrame:
    return lake_frame(
        [
            {
                "tenant_id": t,
                "event_id": e,
                "metric": m,
                "quantity_micros": q,
                "occurred_at": at,
                "usage_date": at.date(),
                "properties": None,
                "source": "test",
            }
            for t, e, m, q, at in rows
        ]
    )


def _commit_to_lake(
    engine: Engine, root: Path, rows: list[tuple[str, str, str, int, dt.datetime]]
) -> list[lake.LakeFile]:
    """What an ingest commit does for these events: lake files listed, keys indexed."""
    events = _events(rows)
    run_id = start_job_run(engine, "ingest_usage", {})
    files = lake.write_lake_files(root, events, f"{run_id}-00000")
    with engine.begin() as conn:
        lake.list_lake_files(conn, files, run_id)
        index_new_events(conn, events.with_columns(key_hashes(events)).select(INDEX_SCHEMA.names()))
    return files


def _keys(*pairs: tuple[str, str]) -> pl.DataFrame:
    keys = pl.DataFrame(pairs, schema=list(KEY), orient="row")
    return keys.with_columns(key_hashes(keys))


def test_the_key_hash_is_md5_of_the_key() -> None:
    """The stored index outlives library upgrades: the hash is pinned to md5 of the key's
    UTF-8 bytes (a NUL inside an event id, non-ASCII, the longest id)."""
    pairs = [("acme", "e1"), ("acme", "a\x00b"), ("t-9", "é😀"), ("x", "z" * 128), ("acme", "e1 ")]
    hashes = _keys(*pairs).get_column(KEY_HASH).to_list()
    assert hashes == [_reference_hash(t, e) for t, e in pairs]
    assert len(set(hashes)) == len(pairs)


def test_successive_lookups_answer_for_their_own_batch(settings: Settings, engine: Engine) -> None:
    _commit_to_lake(
        engine,
        settings.lake_path,
        [("t-a", "e1", "api.calls", 1_000_000, DAY1), ("t-a", "e2", "storage", 5, DAY2)],
    )
    with engine.connect() as conn:
        index = KeyIndex(conn, str(settings.lake_path))
        first = index.versions(_keys(("t-a", "e1"), ("t-a", "e9")))
        # the second batch: e2 at position 1 (as e9 was), e7 at position 0 (as e1 was)
        second = index.versions(_keys(("t-a", "e7"), ("t-a", "e2")))
        third = index.versions(_keys(("t-b", "e1")))
    assert first.rows() == [("t-a", "e1", "api.calls", 1_000_000, DAY1)]
    assert second.rows() == [("t-a", "e2", "storage", 5, DAY2)]
    assert third.height == 0
    assert second.schema == VERSION_SCHEMA


def test_a_shared_hash_is_only_a_candidate(settings: Settings, engine: Engine) -> None:
    """Two keys may share a 64-bit hash: an index entry with a key's hash (on the day of
    another key's files, or on a day without files) finds no version of it in the lake."""
    _commit_to_lake(engine, settings.lake_path, [("t-a", "e1", "api.calls", 7, DAY1)])
    stranger = _reference_hash("t-b", "e1")
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO event_keys (key_hash, usage_date) VALUES (:h, :d1), (:h, :d9)"),
            {"h": stranger, "d1": DAY1.date(), "d9": dt.date(2026, 10, 9)},
        )
    with engine.connect() as conn:
        index = KeyIndex(conn, str(settings.lake_path))
        found = index.versions(_keys(("t-b", "e1"), ("t-a", "e1")))
    assert found.rows() == [("t-a", "e1", "api.calls", 7, DAY1)]


def test_a_lookup_reads_only_the_days_of_its_matches(settings: Settings, engine: Engine) -> None:
    """The cost of a lookup is its matches' days, not the lake: with day 2's file gone from
    disk, a batch whose only match is on day 1 is answered (reading day 2 would fail)."""
    files = _commit_to_lake(
        engine,
        settings.lake_path,
        [("t-a", "e1", "api.calls", 1, DAY1), ("t-a", "e2", "api.calls", 2, DAY2)],
    )
    day2 = next(f for f in files if f.usage_date == DAY2.date())
    (settings.lake_path / day2.path).unlink()
    with engine.connect() as conn:
        index = KeyIndex(conn, str(settings.lake_path))
        assert index.versions(_keys(("t-a", "e1"), ("t-a", "n1"))).rows() == [
            ("t-a", "e1", "api.calls", 1, DAY1)
        ]
        with pytest.raises(duckdb.IOException) as missing:
            index.versions(_keys(("t-a", "e2")))
    assert day2.path.rsplit("/", 1)[-1] in str(missing.value)


def test_lookups_answer_the_same_by_probes_or_by_the_planners_join(
    settings: Settings, engine: Engine
) -> None:
    """A batch much smaller than the index is probed key by key (its own plan for the
    lookup's transaction); a larger one is left to the planner: the answers are the same,
    and the plan setting does not outlive the lookup."""
    indexed = [(f"t-{i % 3}", f"e{i}", "api.calls", i, DAY1 if i % 2 else DAY2) for i in range(9)]
    _commit_to_lake(engine, settings.lake_path, indexed)
    small = _keys(("t-1", "e1"), ("t-9", "e1"))
    large = _keys(*[(f"t-{i % 3}", f"e{i}") for i in range(12)])
    with engine.connect() as conn:
        index = KeyIndex(conn, str(settings.lake_path))
        assert index.indexed == 9
        assert (index.probes(small.height), index.probes(large.height)) == (True, False)
        probed = index.versions(small)
        joined = index.versions(large)
        setting = conn.execute(sa.text("SHOW enable_hashjoin")).scalar_one()
        conn.commit()
    assert probed.rows() == [("t-1", "e1", "api.calls", 1, DAY1)]
    assert sorted(joined.rows()) == sorted((t, e, m, q, at) for t, e, m, q, at in indexed)
    assert setting == "on"


def test_a_lookup_leaves_no_transaction_open(settings: Settings, engine: Engine) -> None:
    """The scratch rows go with a real commit: the connection is idle between lookups."""
    _commit_to_lake(engine, settings.lake_path, [("t-a", "e1", "api.calls", 1, DAY1)])
    with engine.connect() as conn:
        index = KeyIndex(conn, str(settings.lake_path))
        assert index.versions(_keys(("t-a", "e1"))).height == 1
        with engine.connect() as probe:
            states = (
                probe.execute(
                    sa.text("SELECT state FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": conn.connection.driver_connection.info.backend_pid},  # type: ignore[union-attr]
                )
                .scalars()
                .all()
            )
    assert states == ["idle"]


def test_the_driver_connection_is_refused_outside_a_transaction(engine: Engine) -> None:
    """The mechanism behind the lookup's fix: COPY on the driver connection only where
    SQLAlchemy's commit is the driver's."""
    with engine.connect() as conn:
        with pytest.raises(RuntimeError, match="outside a SQLAlchemy transaction"):
            driver_connection(conn)
        with conn.begin():
            assert driver_connection(conn) is conn.connection.driver_connection
        conn.execute(sa.text("SELECT 1"))  # autobegin: a transaction SQLAlchemy began
        assert driver_connection(conn) is conn.connection.driver_connection


# --- the index writer: the run's rows in the commit's transaction, written while it stages --


def _index_rows(*pairs: tuple[str, str]) -> pl.DataFrame:
    keys = _keys(*pairs)
    return keys.select(KEY_HASH, pl.lit(DAY1.date()).alias("usage_date"))


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM event_keys")).scalar_one())


def test_the_writers_rows_are_visible_only_when_its_transaction_commits(engine: Engine) -> None:
    writer = IndexWriter(engine)
    writer.add(_index_rows(("t-a", "e1"), ("t-a", "e2")))
    writer.add(_index_rows(("t-b", "e1")))
    with writer.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM event_keys")).scalar_one() == 3
        assert _count(engine) == 0  # another session: not yet
    assert writer.rows == 3
    assert _count(engine) == 3


def test_a_writer_closed_or_failing_before_the_commit_leaves_nothing(engine: Engine) -> None:
    closed = IndexWriter(engine)
    closed.add(_index_rows(("t-a", "e1")))
    closed.close()
    closed.close()  # twice: nothing more
    failing = IndexWriter(engine)
    with pytest.raises(RuntimeError, match="the commit failed"), failing.transaction() as conn:
        conn.execute(sa.text("INSERT INTO event_keys VALUES (1, DATE '2026-10-03')"))
        raise RuntimeError("the commit failed")
    broken = IndexWriter(engine)
    broken.add(pl.DataFrame({KEY_HASH: ["not a number"], "usage_date": [DAY1.date()]}))
    with (
        pytest.raises(psycopg.errors.InvalidTextRepresentation, match="type bigint"),
        broken.transaction(),
    ):
        pass
    assert _count(engine) == 0


def test_the_writers_transaction_outlives_an_idle_timeout(
    settings: Settings, engine: Engine
) -> None:
    """The writer's connection idles in its transaction while the run validates: a server's
    idle_in_transaction_session_timeout must not end it."""
    database = engine.url.database
    with engine.connect() as conn:
        conn.execute(
            sa.text(f'ALTER DATABASE "{database}" SET idle_in_transaction_session_timeout = 200')
        )
        conn.commit()
    engine.dispose()
    writer = IndexWriter(engine)
    writer.add(_index_rows(("t-a", "e1")))
    time.sleep(0.6)  # NOTE: idle in the transaction, three times the server's timeout
    with writer.transaction() as conn:
        timeout = conn.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar_one()
    assert timeout == "0"
    assert _count(engine) == 1
