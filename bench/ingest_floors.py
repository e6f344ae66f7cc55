"""Each stage of an ingest run at its own floor, in one run, against issue 12's budgets.

    flock /work/tools/bench.lock uv run python bench/ingest_floors.py     # 2,000,000 JSONL events
    # --events N --tenants 1000 --seed 42 --rows-per-file 1000000

The same events as bench/ingest_bench.py (its spec and seed). Each stage is timed alone,
at the cheapest way this stack has to do it (imports and DuckDB start-up not timed):

- read + group: ingest_bench's floor (DuckDB reads the six fields and groups by day);
- read into a frame: DuckDB `read_json` of the six fields as text, into Polars;
- the rules: the Pandera model `EventRecord` over the parsed frame (the stack's statement
  of the rules; the parse itself is not counted);
- lake write: DuckDB `COPY ... (FORMAT parquet, PARTITION_BY usage_date)` of the events;
- usage_daily: COPY of the run's day rows straight into `usage_daily` (Postgres at the head
  migration; no staging, no update of existing rows);
- Prefect: one call of a trivial `@flow` against a warm background server (median of 5).

Prints each figure and the sum of those every run pays (the lake write aside: a design
could write it from the scan that groups) against the budgets: 2.5x the read + group
floor, and 1M events/s. A stage that any design of this product must run (it runs as a Prefect flow,
keeps usage_daily in Postgres, and states its rules as a Pandera model) cannot be faster
than its floor here.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _harness
import duckdb
import polars as pl
import psycopg
from ingest_bench import FLOOR_SOURCES, FLOOR_SQL, MONTH, OCCURRED_AT_SQL, RESULT_COLUMNS

NOW = dt.datetime(2026, 11, 15, tzinfo=dt.UTC)
# The events in the lake's columns (exact quantity, UTC instant, day), one Parquet file per
# day: the least a lake write does.
LAKE_WRITE_SQL = """
COPY (
    SELECT *, CAST(occurred_at AS DATE) AS usage_date
    FROM (
        SELECT
            event_id, tenant_id, metric, properties,
            CAST(quantity AS DECIMAL(18, 6)) AS quantity,
            {occurred_at} AS occurred_at
        FROM {source}
    )
) TO '{lake}' (FORMAT parquet, PARTITION_BY (usage_date))
"""


def _timed(label: str, fn: object) -> float:
    began = time.perf_counter()
    fn()  # type: ignore[operator]
    seconds = time.perf_counter() - began
    print(f"  {label:<66} {seconds:6.2f} s", flush=True)
    return seconds


def _prefect_floor(work: Path) -> float:
    with _harness.prefect_server(work / "prefect"):
        from prefect import flow

        @flow(name="trivial")
        def trivial() -> int:
            return 1

        trivial()  # NOTE: warm: the client, the flow's registration
        times = []
        for _ in range(5):
            began = time.perf_counter()
            trivial()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from models.events.parser import parse_raw_events
    from models.events.validate import _only_structural, reasons_for
    from services.ingest.readers import read_event_file
    from tallyflow.core import migrate
    from tallyflow.core.db import get_engine, to_sqlalchemy_url
    from tallyflow.core.settings import Settings
    from tallyflow.synthetic.generate import UsageSpec, generate_usage

    print(
        f"{_harness.utc_stamp()}, commit {_harness.commit()}, load average "
        f"{_harness.load_average()} (start); {args.events:,} JSONL events",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tallyflow-floors-")))
        spec = UsageSpec(month=MONTH, tenants=args.tenants, events=args.events, seed=args.seed)
        files = [
            str(f)
            for f in generate_usage(
                work / "events",
                spec,
                format="jsonl",
                files_by="rows",
                rows_per_file=args.rows_per_file,
            ).files
        ]
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.sql("SELECT 1").fetchall()
        figures: dict[str, float] = {}
        daily: dict[str, pl.DataFrame] = {}

        def read_and_group() -> None:
            daily["d"] = con.sql(
                FLOOR_SQL.format(source=FLOOR_SOURCES["jsonl"]), params={"files": files}
            ).pl()

        figures["read + group (the floor contender)"] = _timed(
            "read + group by day (ingest_bench's floor)", read_and_group
        )
        figures["read into a frame"] = _timed(
            "read the six fields as text into Polars (DuckDB read_json)",
            lambda: con.sql(
                f"SELECT * FROM {FLOOR_SOURCES['jsonl']}", params={"files": files}
            ).pl(),
        )
        parsed = pl.concat([parse_raw_events(read_event_file(f), NOW) for f in files])
        checked = _only_structural(parsed)
        found: dict[str, int] = {}
        figures["the rules (Pandera)"] = _timed(
            "the rules: EventRecord (Pandera) over the parsed frame",
            lambda: found.update(rejected=reasons_for(checked).height),
        )
        lake = work / "lake"
        figures["lake write"] = _timed(
            "lake write: DuckDB COPY ... PARTITION_BY usage_date (Parquet)",
            lambda: con.sql(
                LAKE_WRITE_SQL.format(
                    source=FLOOR_SOURCES["jsonl"], lake=lake, occurred_at=OCCURRED_AT_SQL
                ),
                params={"files": files},
            ),
        )
        uri = stack.enter_context(_harness.throwaway_postgres("tallyflow-floors-"))
        engine = get_engine(Settings(database_url=to_sqlalchemy_url(uri), home=work / "home"))
        migrate.upgrade(engine)
        engine.dispose()
        rows = daily["d"].select(RESULT_COLUMNS)
        buffer = io.BytesIO()
        rows.write_csv(buffer, include_header=False)

        def load_usage_daily() -> None:
            with psycopg.connect(uri) as pg, pg.cursor() as cur:
                statement = (
                    f"COPY usage_daily ({', '.join(RESULT_COLUMNS)}) FROM STDIN (FORMAT csv)"
                )
                with cur.copy(statement) as copy:
                    copy.write(buffer.getvalue())

        figures["usage_daily"] = _timed(
            f"usage_daily: COPY of the {rows.height:,} day rows into the table", load_usage_daily
        )
        figures["Prefect"] = _prefect_floor(work)
        print(
            f"  {'Prefect: a trivial @flow call, warm server (median of 5)':<66} "
            f"{figures['Prefect']:6.2f} s"
        )
    floor = figures["read + group (the floor contender)"]
    # NOTE: the lake write is not summed: a design could write it from the scan that groups.
    total = floor + figures["the rules (Pandera)"] + figures["usage_daily"] + figures["Prefect"]
    print(
        f"\nsum of the floors every run pays (read + group, the rules, usage_daily, Prefect;"
        f" not the lake write): {total:.2f} s\n"
        f"budgets: 2.5x the floor = {2.5 * floor:.2f} s; 1M events/s = "
        f"{args.events / 1_000_000:.2f} s\n"
        f"rejected by the rules: {found['rejected']} (clean events: 0 expected)"
    )
    return 0 if found["rejected"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
