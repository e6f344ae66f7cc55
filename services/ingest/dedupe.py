"""Idempotency by (tenant_id, event_id): new, duplicate or conflicting_duplicate.

The rule has one home, `split_repeats`: the standing version of a key is the one known
before the batch (the lake's key index, the run's earlier parts, or the stored inbox),
else the batch's first occurrence (files in path order, rows in order, then pushed events
in arrival order). A repeat with the same metric, quantity and occurred_at is a duplicate
(dropped, counted); with other content it is a conflicting_duplicate (rejected, the
standing version stays). The file ingest and the HTTP push both call it.

The lake's versions are found through the key index `event_keys` (Postgres): the stable
64-bit hash of each key (`key_hashes`; the rule: sql/duckdb/ingest/create_event_key_hash.sql)
and the day of its lake files. A batch's hashes are copied into a scratch table and joined
with the index; a match is a candidate, whose standing version is read exactly from the
committed lake files of its day (a hash shared by two keys finds no version there). So the
cost of a batch is its own keys plus the days of its repeats, whatever the size of the
lake. The index rows of a run's new events are written in the run's transaction, with the
manifest (`IndexWriter`, during staging; `index_new_events`).
"""

from __future__ import annotations

import contextlib
import io
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.ingest import lake
from tallyflow.core import storage
from tallyflow.core.db import driver_connection
from tallyflow.core.sqlfiles import copy_statement, duckdb_sql, sql

if TYPE_CHECKING:
    import duckdb

KEY: Final = ("tenant_id", "event_id")
CONTENT: Final = ("metric", "quantity_micros", "occurred_at")
VERSION_SCHEMA: Final = pl.Schema(
    {
        "tenant_id": pl.String(),
        "event_id": pl.String(),
        "metric": pl.String(),
        "quantity_micros": pl.Int64(),
        "occurred_at": pl.Datetime("us", "UTC"),
    }
)
# NOTE: the key sort's DuckDB memory (it spills past it) and the rows per COPY chunk.
_KEY_SORT_MEMORY: Final = "256MB"
_KEY_BATCH_ROWS: Final = 200_000
_STANDING: Final = tuple(f"{c}_standing" for c in CONTENT)
_AS_STANDING: Final = dict(zip(CONTENT, _STANDING, strict=True))


@dataclass(frozen=True)
class DedupeResult:
    new: pl.DataFrame  # first occurrences of keys not known before: to store
    duplicates: pl.DataFrame  # dropped, counted (source, row)
    conflicts: pl.DataFrame  # rejected with conflicting_duplicate


def split_repeats(batch: pl.DataFrame, standing: pl.DataFrame | None = None) -> DedupeResult:
    """THE dedupe rule. `batch`: rows in arrival order (KEY + CONTENT among its columns);
    `standing`: KEY + CONTENT of the versions known before the batch (at most one per key).
    Every row is new (first of an unknown key), a duplicate or a conflict."""
    batch = batch.with_row_index("position").cast({"position": pl.Int64})
    first_mask = batch.select(pl.struct(*KEY).is_first_distinct()).to_series()
    firsts = batch.filter(first_mask)
    repeats = batch.filter(~first_mask)
    known = (
        (standing if standing is not None else pl.DataFrame(schema=VERSION_SCHEMA))
        .select(*KEY, *CONTENT)
        .cast(VERSION_SCHEMA)
        .rename(_AS_STANDING)
    )
    firsts_known = firsts.join(known, on=list(KEY), how="inner", maintain_order="left")
    new = firsts.join(known, on=list(KEY), how="anti", maintain_order="left")
    # the standing version of every key of the batch: known before, else its first row
    standing_all = pl.concat(
        [
            known,
            new.select(*KEY, *[pl.col(c).alias(s) for c, s in _AS_STANDING.items()]),
        ]
    )
    repeats_checked = repeats.join(standing_all, on=list(KEY), how="inner", maintain_order="left")
    checked = pl.concat([firsts_known, repeats_checked], how="vertical_relaxed").sort("position")
    same = pl.all_horizontal(
        pl.col(c) == pl.col(s) for c, s in zip(CONTENT, _STANDING, strict=True)
    )
    drop = ["position", *_STANDING]
    return DedupeResult(
        new=new.drop("position"),
        duplicates=checked.filter(same).drop(drop),
        conflicts=checked.filter(~same).drop(drop),
    )


KEY_HASH: Final = "key_hash"
INDEX_SCHEMA: Final = pl.Schema({KEY_HASH: pl.Int64(), "usage_date": pl.Date()})


def _hash_connection(files: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    con = storage.connect_duckdb(files or [])
    con.execute(duckdb_sql("ingest/create_event_key_hash"))
    return con


def key_hashes(frame: pl.DataFrame) -> pl.Series:
    """The key index's hash of each row's (tenant_id, event_id), in row order: stable across
    versions (md5), so the stored index stays valid. Also the run's first screen for repeats
    across its parts. A match is only a candidate: `versions_of_keys` checks it exactly."""
    con = _hash_connection()
    try:
        con.register("keys", frame.select(KEY).to_arrow())
        hashes: pl.DataFrame = con.sql(duckdb_sql("ingest/select_event_key_hashes")).pl()
    finally:
        con.close()
    return hashes.get_column(KEY_HASH).cast(pl.Int64)


class KeyIndex:
    """The lake's key index (`event_keys`), read through one connection of the run."""

    # NOTE: index probes instead of the planner's hash join when the index holds more than
    # this many times the batch's keys: between the two measured points (probes faster at
    # 4x, the join at 0.01x; bench/README.md, "Lookups probe the index").
    PROBE_RATIO: Final = 2

    def __init__(self, conn: sa.Connection, lake_root: str) -> None:
        self.conn, self.lake_root = conn, lake_root
        conn.execute(sql("ingest/create_batch_keys"))
        # NOTE: read once: under the usage lock only this run's commit adds to the index
        self.indexed = int(conn.execute(sql("ingest/select_indexed_event_count")).scalar_one())
        conn.commit()

    def probes(self, batch_keys: int) -> bool:
        """Whether a lookup of `batch_keys` keys probes the index key by key."""
        return self.indexed > self.PROBE_RATIO * batch_keys

    def versions(self, keys: pl.DataFrame) -> pl.DataFrame:
        """KEY + CONTENT of those `keys` (unique; KEY and KEY_HASH) already in the lake: the
        hashes COPYed in and joined with the index, the days of the matches COPYed out and
        the manifest's files of those days read, in one transaction (the scratch rows go
        with its commit); then the candidates looked up exactly in those files."""
        if keys.height == 0:
            return pl.DataFrame(schema=VERSION_SCHEMA)
        # NOTE: in hash order: when probed (`probes`), the index is walked in that order.
        keys = keys.select(*KEY, KEY_HASH).sort(KEY_HASH).with_row_index("position")
        inbound = io.BytesIO()
        keys.select("position", KEY_HASH).write_csv(inbound, include_header=False)
        outbound = io.BytesIO()
        # NOTE: in a transaction SQLAlchemy began (db.driver_connection): its commit empties
        # the scratch table, so the next batch joins only its own rows.
        with self.conn.begin():
            if self.probes(keys.height):
                self.conn.execute(sql("ingest/set_key_lookup_plan"))
            with driver_connection(self.conn).cursor() as cur:
                with cur.copy(copy_statement("ingest/copy_batch_keys")) as copy:
                    copy.write(inbound.getvalue())
                with cur.copy(copy_statement("ingest/copy_indexed_days_of_batch_keys")) as copy:
                    for data in copy:
                        outbound.write(data)
            if outbound.tell() == 0:
                return pl.DataFrame(schema=VERSION_SCHEMA)
            matches = pl.read_csv(
                outbound.getvalue(),
                has_header=False,
                new_columns=["position", "usage_date"],
                schema_overrides={"position": pl.UInt32, "usage_date": pl.Date},
            )
            days = sorted(set(matches.get_column("usage_date").to_list()))
            files = lake.committed_lake_files(self.conn, days)
        candidates = keys.join(matches.select("position").unique(), on="position", how="semi")
        return versions_of_keys(
            candidates.select(KEY), lake.absolute(self.lake_root, files), frames=[]
        )


def index_new_events(conn: sa.Connection, keys: pl.DataFrame) -> int:
    """Add the run's new events (`keys`: KEY_HASH and usage_date of each) to `event_keys`,
    in the caller's transaction, in hash order (the index's btree takes them page by page)."""
    ordered = keys.select(INDEX_SCHEMA.names()).sort(KEY_HASH)
    return _copy_index_rows(
        conn, (ordered.slice(i, _KEY_BATCH_ROWS) for i in range(0, ordered.height, _KEY_BATCH_ROWS))
    )


class IndexWriter:
    """The run's new index rows, COPYed into `event_keys` in sorted chunks from a thread, in
    a transaction that the run's commit continues (`transaction`): Postgres inserts them
    while the run validates and dedupes the next parts. Nothing is visible before that
    commit; an error, a crash or `close` without it rolls them back.

    NOTE: the thread is the connection's only user until `transaction` joins it."""

    MIN_CHUNK_ROWS: Final = 500_000

    def __init__(self, engine: Engine) -> None:
        self.conn = engine.connect()
        self._root = self.conn.begin()
        self.conn.execute(sql("ingest/keep_index_writer_open"))
        self.rows = 0
        self._held: list[pl.DataFrame] = []
        self._held_rows = self._queued = 0
        self._parts: queue.SimpleQueue[pl.DataFrame | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._write, name="tallyflow-index-writer", daemon=True
        )
        self._thread.start()

    def _write(self) -> None:
        try:
            while (rows := self._parts.get()) is not None:
                self.rows += index_new_events(self.conn, rows)
        except BaseException as exc:  # NOTE: handed to the run's thread (add, transaction)
            self._error = exc

    def add(self, rows: pl.DataFrame) -> None:
        """Take a part's new index rows (KEY_HASH, usage_date). They are queued in sorted
        chunks of at least MIN_CHUNK_ROWS and at least as many rows as queued before:
        each chunk walks the index's B-tree once, so a run makes a few passes (five
        chunks for 10M), not one per part (one sorted pass of 2M rows into a 10M index
        3.3 s, four of 500k 3.9-4.8 s: bench/README.md)."""
        if self._error is not None:
            raise self._error
        self._held.append(rows)
        self._held_rows += rows.height
        if self._held_rows >= max(self.MIN_CHUNK_ROWS, self._queued):
            self._queue_held()

    def _queue_held(self) -> None:
        if self._held:
            self._parts.put(pl.concat(self._held).sort(KEY_HASH))
            self._queued += self._held_rows
            self._held, self._held_rows = [], 0

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._parts.put(None)
            self._thread.join()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Every queued row written, the connection of their transaction: committed when
        the block ends, rolled back if it raises."""
        try:
            self._queue_held()
            self._stop()
            if self._error is not None:
                raise self._error
            yield self.conn
            self._root.commit()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the thread and end the connection (its transaction rolls back unless
        committed). Safe to call twice."""
        self._stop()
        self.conn.close()


def index_lake_files(conn: sa.Connection, lake_files: list[str]) -> int:
    """Add the events of these committed lake files (listed before the index held them) to
    `event_keys`, in the caller's transaction, in hash order (DuckDB reads and sorts them,
    spilling to disk past `_KEY_SORT_MEMORY`; streamed to COPY in batches: memory is bounded
    whatever the lake's size)."""
    if not lake_files:
        return 0
    with tempfile.TemporaryDirectory(prefix="tallyflow-keys-") as spill:
        con = _hash_connection(lake_files)
        try:
            con.execute(f"SET memory_limit = '{_KEY_SORT_MEMORY}'")
            con.execute("SET temp_directory = ?", [spill])
            batches = con.sql(
                duckdb_sql("ingest/select_new_event_keys"), params={"files": lake_files}
            ).to_arrow_reader(_KEY_BATCH_ROWS)
            return _copy_index_rows(conn, (pl.DataFrame(b) for b in batches))
        finally:
            con.close()


def _copy_index_rows(conn: sa.Connection, batches: Iterable[pl.DataFrame]) -> int:
    rows = 0
    with driver_connection(conn).cursor().copy(copy_statement("ingest/copy_event_keys")) as copy:
        for batch in batches:
            buffer = io.BytesIO()
            batch.write_csv(buffer, include_header=False)
            copy.write(buffer.getvalue())
            rows += batch.height
    return rows


def versions_of_keys(
    keys: pl.DataFrame, lake_files: list[str], frames: list[pl.DataFrame]
) -> pl.DataFrame:
    """KEY + CONTENT of the events with these keys in `lake_files` (committed files of the
    candidates' days, or the run's own, not yet committed) and in `frames`."""
    parts = [f.join(keys, on=list(KEY), how="semi").select(*KEY, *CONTENT) for f in frames]
    if lake_files and keys.height:
        batch_keys = keys.with_row_index("position")
        con = storage.connect_duckdb(lake_files)
        try:
            found = (
                con.sql(
                    duckdb_sql("ingest/select_lake_versions_of_keys"), params={"files": lake_files}
                )
                .pl()
                .cast({"position": pl.UInt32})
            )
        finally:
            con.close()
        parts.append(
            batch_keys.join(found, on="position", how="inner").select(
                *KEY, *[pl.col(f"lake_{c}").alias(c) for c in CONTENT]
            )
        )
    return (
        pl.concat([p.cast(VERSION_SCHEMA) for p in parts])
        if parts
        else pl.DataFrame(schema=VERSION_SCHEMA)
    )
