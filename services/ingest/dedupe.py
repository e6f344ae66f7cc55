"""Idempotency by (tenant_id, event_id): new, duplicate or conflicting_duplicate.

The rule has one home, `split_repeats`: the standing version of a key is the one known
before the batch (the lake's key index, the run's earlier parts, or the stored inbox),
else the batch's first occurrence (files in path order, rows in order, then pushed events
in arrival order). A repeat with the same metric, quantity and occurred_at is a duplicate
(dropped, counted); with other content it is a conflicting_duplicate (rejected, the
standing version stays). The file ingest and the HTTP push both call it.

The lake's versions come from `event_keys` (Postgres), not from the lake files: a batch's
keys are copied into a scratch table and joined with the index, so the cost of a batch is
its own keys, whatever the size of the lake. The index rows of a run's new events are
written in the run's transaction, with the manifest (`index_new_events`).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from typing import Final

import polars as pl
import sqlalchemy as sa

from tallyflow.core import storage
from tallyflow.core.db import driver_connection
from tallyflow.core.sqlfiles import copy_statement, duckdb_sql, sql

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


def _hex_event_ids() -> pl.Expr:
    """event_id as Postgres bytea input (`\\x` + hex of its UTF-8 bytes)."""
    return (pl.lit("\\x") + pl.col("event_id").str.encode("hex")).alias("event_id")


class KeyIndex:
    """The lake's key index (`event_keys`), read through one connection of the run."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        conn.execute(sql("ingest/create_batch_keys"))
        conn.commit()

    def versions(self, keys: pl.DataFrame) -> pl.DataFrame:
        """KEY + CONTENT of those `keys` (unique) already in the lake: one COPY in, one
        join, one COPY out, in one transaction; the scratch rows go with its commit."""
        if keys.height == 0:
            return pl.DataFrame(schema=VERSION_SCHEMA)
        keys = keys.select(KEY).with_row_index("position")
        inbound = io.BytesIO()
        keys.select("position", "tenant_id", _hex_event_ids()).write_csv(
            inbound, include_header=False
        )
        outbound = io.BytesIO()
        # NOTE: in a transaction SQLAlchemy began (db.driver_connection): its commit empties
        # the scratch table, so the next batch joins only its own rows.
        with self.conn.begin(), driver_connection(self.conn).cursor() as cur:
            with cur.copy(copy_statement("ingest/copy_batch_keys")) as copy:
                copy.write(inbound.getvalue())
            with cur.copy(copy_statement("ingest/copy_indexed_versions_of_batch_keys")) as copy:
                for data in copy:
                    outbound.write(data)
        if outbound.tell() == 0:
            return pl.DataFrame(schema=VERSION_SCHEMA)
        found = pl.read_csv(
            outbound.getvalue(),
            has_header=False,
            new_columns=["position", "metric", "quantity_micros", "occurred_us"],
            schema_overrides={
                "position": pl.UInt32,
                "metric": pl.String,
                "quantity_micros": pl.Int64,
                "occurred_us": pl.Int64,
            },
        )
        return (
            keys.join(found, on="position", how="inner")
            .with_columns(pl.from_epoch("occurred_us", time_unit="us").dt.replace_time_zone("UTC"))
            .rename({"occurred_us": "occurred_at"})
            .select(VERSION_SCHEMA.names())
            .cast(VERSION_SCHEMA)
        )


def index_new_events(conn: sa.Connection, lake_files: list[str]) -> int:
    """Add the events of these lake files (new to the lake: written by this run, or listed
    before the index existed) to `event_keys`, in the caller's transaction, in key order
    (DuckDB sorts them, spilling to disk past `_KEY_SORT_MEMORY`; streamed to COPY in
    batches: memory is bounded whatever the run's size)."""
    if not lake_files:
        return 0
    raw = driver_connection(conn)
    rows = 0
    with tempfile.TemporaryDirectory(prefix="tallyflow-keys-") as spill:
        con = storage.connect_duckdb(lake_files)
        try:
            con.execute(f"SET memory_limit = '{_KEY_SORT_MEMORY}'")
            con.execute("SET temp_directory = ?", [spill])
            batches = con.sql(
                duckdb_sql("ingest/select_new_event_keys"), params={"files": lake_files}
            ).to_arrow_reader(_KEY_BATCH_ROWS)
            with raw.cursor().copy(copy_statement("ingest/copy_event_keys")) as copy:
                for batch in batches:
                    buffer = io.BytesIO()
                    pl.DataFrame(batch).write_csv(buffer, include_header=False)
                    copy.write(buffer.getvalue())
                    rows += batch.num_rows
        finally:
            con.close()
    return rows


def key_hashes(frame: pl.DataFrame) -> pl.Series:
    """A 64-bit hash of each row's (tenant_id, event_id): a cheap first screen for repeats
    across a run's parts. A match is only a candidate: `versions_of_keys` checks it exactly."""
    return frame.select(pl.struct(*KEY).hash(seed=0x7A11F10)).to_series()


def versions_of_keys(
    keys: pl.DataFrame, lake_files: list[str], frames: list[pl.DataFrame]
) -> pl.DataFrame:
    """KEY + CONTENT of the events with these keys in `lake_files` (the run's own, not yet
    committed) and in `frames`."""
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
