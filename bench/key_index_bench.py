"""The ingest's key index (services/ingest/dedupe.py), stage by stage, with its floors.

    flock /work/tools/bench.lock uv run python bench/key_index_bench.py            # 2,000,000 keys
    # --events N --days 31 --tenants 1000 --part-rows 500000

In a throwaway embedded Postgres at the head migration, with N synthetic events in lake
files of `--days` days (listed in the manifest as a run's commit lists them), it times:

1. `key_hashes` of the N keys (md5 in DuckDB: the stable hash rule);
2. the commit's `index_new_events` of the N index rows (key hash, day; sorted by hash),
   one transaction, into the empty index;
3. its floor: the same rows COPYed into a table of the same shape without the index (the
   heap and its WAL);
4. the same N keys as the 0013 index stored them (tenant_id, event_id, content, primary
   key), COPYed sorted by key into that shape: the design this one replaced;
5. the staging lookups, `KeyIndex.versions` in parts of `--part-rows`: N new keys (no
   match), then one part of repeats (every key matches: its days' lake files are read);
6. the rebuild after migration 0014 (`index_lake_files` of every lake file: DuckDB reads,
   hashes and sorts them, COPY), in events/s.

Prints each figure; checks that the index holds N rows after 2 and 6 and that the repeats
are all found with their content (exits 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _harness
import polars as pl
import sqlalchemy as sa

from services.ingest import lake
from services.ingest.dedupe import (
    INDEX_SCHEMA,
    KEY,
    KEY_HASH,
    KeyIndex,
    index_new_events,
    key_hashes,
)
from services.ingest.staging import index_unindexed_lake_files
from services.job_runs import start_job_run
from tallyflow.core import migrate
from tallyflow.core.db import driver_connection, get_engine, to_sqlalchemy_url
from tallyflow.core.settings import Settings

START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def _events(n: int, days: int, tenants: int, offset: int = 0) -> pl.DataFrame:
    i = pl.int_range(offset, offset + n, eager=True)
    frame = pl.DataFrame({"i": i}).select(
        tenant_id=pl.format("tenant-{}", (pl.col("i") * 7919 % tenants).cast(pl.String)),
        event_id=pl.format("evt-{}-{}", pl.col("i"), (pl.col("i") * 2654435761 % 1_000_003)),
        metric=pl.lit("api_calls"),
        quantity_micros=(pl.col("i") % 1000 + 1) * 1_000_000,
        occurred_at=pl.lit(START)
        + pl.duration(microseconds=pl.col("i") * (days * 86_400_000_000 // max(n, 1))),
    )
    return frame.with_columns(
        usage_date=pl.col("occurred_at").dt.date(),
        properties=pl.lit(None, pl.String),
        source=pl.lit("bench"),
    )


def _timed(label: str, n: int, fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    seconds = time.perf_counter() - start
    print(f"  {label:<58} {seconds:7.2f} s  {seconds / n * 1e6:6.2f} us a key", flush=True)
    return seconds


def _copy_csv(conn: sa.Connection, statement: str, frame: pl.DataFrame) -> None:
    with driver_connection(conn).cursor().copy(statement) as copy:
        for start in range(0, frame.height, 200_000):
            buffer = io.BytesIO()
            frame.slice(start, 200_000).write_csv(buffer, include_header=False)
            copy.write(buffer.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--part-rows", type=int, default=500_000)
    args = parser.parse_args()
    n = args.events
    with contextlib.ExitStack() as stack:
        uri = stack.enter_context(_harness.throwaway_postgres("tallyflow-bench-keys-"))
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tallyflow-keys-")))
        engine = get_engine(Settings(database_url=to_sqlalchemy_url(uri), home=root / "home"))
        migrate.upgrade(engine)
        print(f"{n:,} events over {args.days} days, {args.tenants:,} tenants", flush=True)
        events = _events(n, args.days, args.tenants)
        run_id = start_job_run(engine, "ingest_usage", {})
        files = lake.write_lake_files(root / "lake", events, f"{run_id}-00000")
        with engine.begin() as conn:
            lake.list_lake_files(conn, files, run_id)
        hashed: dict[str, pl.Series] = {}
        _timed("1. key_hashes (md5 in DuckDB)", n, lambda: hashed.update(h=key_hashes(events)))
        rows = events.with_columns(hashed["h"]).select(INDEX_SCHEMA.names()).sort(KEY_HASH)

        def commit_path() -> None:
            with engine.begin() as conn:
                index_new_events(conn, rows)

        _timed("2. index_new_events (commit, into the empty index)", n, commit_path)

        def heap_floor() -> None:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE keys_heap (key_hash bigint, usage_date date)"))
                _copy_csv(conn, "COPY keys_heap FROM STDIN (FORMAT csv)", rows)

        _timed("3. floor: the same rows into the heap alone (no index)", n, heap_floor)
        old_shape = events.select(
            "tenant_id",
            (pl.lit("\\x") + pl.col("event_id").str.encode("hex")).alias("event_id"),
            "metric",
            "quantity_micros",
            pl.col("occurred_at").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
        ).sort("tenant_id", "event_id")

        def old_index() -> None:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "CREATE TABLE keys_0013 (tenant_id text NOT NULL, event_id bytea NOT NULL,"
                        " metric text NOT NULL, quantity_micros bigint NOT NULL,"
                        " occurred_at timestamptz NOT NULL, PRIMARY KEY (tenant_id, event_id))"
                    )
                )
                _copy_csv(conn, "COPY keys_0013 FROM STDIN (FORMAT csv)", old_shape)

        _timed("4. before (0013): keys + content, primary key, sorted", n, old_index)
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE event_keys"))
            conn.commit()
            index = KeyIndex(conn, str(root / "lake"))
            fresh = _events(n, args.days, args.tenants, offset=n)
            fresh = fresh.select(*KEY).with_columns(key_hashes(fresh))
            found: list[int] = []

            def lookups_new() -> None:
                for start in range(0, n, args.part_rows):
                    found.append(index.versions(fresh.slice(start, args.part_rows)).height)

            _timed(f"5a. lookups of {n:,} new keys (parts of {args.part_rows:,})", n, lookups_new)
            repeats = (
                events.head(args.part_rows)
                .select(*KEY)
                .with_columns(hashed["h"].head(args.part_rows))
            )
            versions: dict[str, pl.DataFrame] = {}
            _timed(
                f"5b. lookup of {repeats.height:,} repeats (their days' files read)",
                repeats.height,
                lambda: versions.update(v=index.versions(repeats)),
            )
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM event_keys"))
            conn.execute(sa.text("UPDATE lake_files SET keys_indexed = false"))
        rebuilt: list[int] = []

        def rebuild() -> None:
            with engine.connect() as conn:
                rebuilt.append(index_unindexed_lake_files(conn, str(root / "lake")))

        seconds = _timed("6. rebuild after 0014 (index_lake_files of the lake)", n, rebuild)
        print(f"     {n / seconds:,.0f} events/s", flush=True)
        with engine.connect() as conn:
            indexed = conn.execute(sa.text("SELECT count(*) FROM event_keys")).scalar_one()
        expected = events.head(args.part_rows).select(
            *KEY, "metric", "quantity_micros", "occurred_at"
        )
        ok = (
            sum(found) == 0
            and rebuilt == [n]
            and indexed == n
            and versions["v"].sort(KEY).equals(expected.sort(KEY))
        )
        print(f"  checks: {'OK' if ok else 'FAILED'}", flush=True)
        engine.dispose()
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
