"""Ingest benchmark: the full `ingest_usage` flow against two references on the same files.

    uv run python bench/ingest_bench.py                      # 2,000,000 events, JSONL
    uv run python bench/ingest_bench.py --formats all        # JSONL, CSV, Parquet, JSONL.gz
    uv run python bench/ingest_bench.py --events 10000000    # peak RSS at 10M

Generates N clean events (tallyflow.synthetic.generate, 1M rows a file) in each format asked
(`--formats jsonl,csv,parquet,jsonl.gz` or `all`; the same events in every format) and times,
each in its own child process (so each peak RSS is its own; the parent samples the child's
process tree with psutil and the child reports its own peak, VmHWM):

  (a) ingest  the full flow `flows.ingest_usage.ingest_usage(paths=[...])`: validate ->
              lake -> aggregate -> usage_daily (COPY) -> quota refresh, in a fresh
              TALLYFLOW_HOME per format (embedded Postgres). A tiny warm-up ingest (another
              month, same format) runs first, so Prefect start-up and imports are not timed.
  (b) floor   DuckDB alone: read the same files (read_json, read_csv, read_parquet; a .gz
              file decompressed by DuckDB), parse quantity/occurred_at, group by (tenant,
              metric, UTC day): sum, count, max, min/max occurred_at.
  (c) pg      the hand-written path: COPY the rows into Postgres, then INSERT ... SELECT ...
              GROUP BY into a usage_daily-like table. JSONL: each line into a jsonb column
              (a .gz file decompressed in Python as it is streamed to COPY); CSV: COPY FORMAT
              csv into text columns; Parquet (Postgres reads none): each row batch (pyarrow)
              turned into CSV in Python (Polars write_csv, properties as JSON text) and
              COPYed into the same text columns.

Then checks, per format, that usage_daily (a), the floor (b), the PG path (c) and the
generator's oracle are equal, exactly (decimal text), and prints events/s, peak RSS and the
ratios. The parent starts each format's embedded Postgres and one Prefect server
(PREFECT_API_URL when set, else a background one) and stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _harness

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MONTH = "2026-10"
WARMUP_MONTH = "2026-09"
FORMATS = ("jsonl", "csv", "parquet", "jsonl.gz")

# The floor's reader of each format: the same six fields as text (properties as JSON), so
# the parse below is one statement for all. NOTE: read_json decompresses a .gz itself.
_FIELDS_AS_TEXT = """{
    event_id: 'VARCHAR', tenant_id: 'VARCHAR', metric: 'VARCHAR',
    quantity: 'VARCHAR', occurred_at: 'VARCHAR', properties: 'VARCHAR'
}"""
FLOOR_SOURCES = {
    "jsonl": "read_json($files, format = 'newline_delimited', columns = "
    + _FIELDS_AS_TEXT.replace("properties: 'VARCHAR'", "properties: 'JSON'")
    + ")",
    "csv": "read_csv($files, header = true, auto_detect = false, columns = "
    + _FIELDS_AS_TEXT
    + ")",
    "parquet": "read_parquet($files)",
}
FLOOR_SOURCES["jsonl.gz"] = FLOOR_SOURCES["jsonl"]

# One row per (tenant, metric, UTC day) of the accepted events. NOTE: the session time
# zone is UTC, so CAST(timestamptz AS DATE) is the UTC day.
# The instant of an `occurred_at` text: epoch seconds, else RFC 3339.
OCCURRED_AT_SQL = """CASE
            WHEN regexp_full_match(occurred_at, '[0-9]+')
                THEN to_timestamp(CAST(occurred_at AS BIGINT))
            ELSE CAST(occurred_at AS TIMESTAMPTZ)
        END"""
FLOOR_SQL = (
    """
WITH events AS (
    SELECT
        tenant_id,
        metric,
        CAST(quantity AS DECIMAL(38, 6)) AS quantity,
        """
    + OCCURRED_AT_SQL.replace("{", "{{").replace("}", "}}")
    + """ AS occurred_at
    FROM {source}
)
SELECT
    tenant_id,
    metric,
    CAST(occurred_at AS DATE) AS usage_date,
    SUM(quantity) AS quantity_sum,
    COUNT(*) AS event_count,
    MAX(quantity) AS quantity_max,
    MIN(occurred_at) AS first_occurred_at,
    MAX(occurred_at) AS last_occurred_at
FROM events
GROUP BY ALL
"""
)

PG_CREATE_SQL = """
DROP TABLE IF EXISTS bench_raw_events, bench_raw_rows, bench_usage_daily;
CREATE TABLE bench_raw_events (line jsonb NOT NULL);
CREATE TABLE bench_raw_rows (
    event_id text, tenant_id text, metric text, quantity text, occurred_at text,
    properties text
);
CREATE TABLE bench_usage_daily (
    tenant_id text NOT NULL,
    metric text NOT NULL,
    usage_date date NOT NULL,
    quantity_sum numeric(38, 6) NOT NULL,
    event_count bigint NOT NULL,
    quantity_max numeric(19, 6) NOT NULL,
    first_occurred_at timestamptz NOT NULL,
    last_occurred_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, metric, usage_date)
);
"""

# NOTE: CSV with control characters as quote and delimiter: each line arrives verbatim
# (JSON's backslashes would be escapes in COPY's text format).
PG_COPY_SQL = (
    "COPY bench_raw_events (line) FROM STDIN WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
)

# CSV (and Parquet turned into CSV): the six fields into text columns.
PG_COPY_CSV_SQL = (
    "COPY bench_raw_rows (event_id, tenant_id, metric, quantity, occurred_at, properties)"
    " FROM STDIN WITH (FORMAT csv, HEADER {header})"
)

PG_AGGREGATE_SQL = """
INSERT INTO bench_usage_daily (
    tenant_id, metric, usage_date, quantity_sum, event_count, quantity_max,
    first_occurred_at, last_occurred_at
)
SELECT
    tenant_id,
    metric,
    (occurred_at AT TIME ZONE 'UTC')::date,
    sum(quantity),
    count(*),
    max(quantity),
    min(occurred_at),
    max(occurred_at)
FROM (
    SELECT
        line ->> 'tenant_id' AS tenant_id,
        line ->> 'metric' AS metric,
        (line ->> 'quantity')::numeric(19, 6) AS quantity,
        CASE
            WHEN jsonb_typeof(line -> 'occurred_at') = 'number'
                THEN to_timestamp((line ->> 'occurred_at')::bigint)
            ELSE (line ->> 'occurred_at')::timestamptz
        END AS occurred_at
    FROM bench_raw_events
) AS events
GROUP BY 1, 2, 3
"""

PG_AGGREGATE_ROWS_SQL = """
INSERT INTO bench_usage_daily (
    tenant_id, metric, usage_date, quantity_sum, event_count, quantity_max,
    first_occurred_at, last_occurred_at
)
SELECT
    tenant_id,
    metric,
    (occurred_at AT TIME ZONE 'UTC')::date,
    sum(quantity),
    count(*),
    max(quantity),
    min(occurred_at),
    max(occurred_at)
FROM (
    SELECT
        tenant_id,
        metric,
        quantity::numeric(19, 6) AS quantity,
        CASE
            WHEN occurred_at ~ '^[0-9]+$' THEN to_timestamp(occurred_at::bigint)
            ELSE occurred_at::timestamptz
        END AS occurred_at
    FROM bench_raw_rows
) AS events
GROUP BY 1, 2, 3
"""

RESULT_COLUMNS = (
    "tenant_id",
    "metric",
    "usage_date",
    "quantity_sum",
    "event_count",
    "quantity_max",
    "first_occurred_at",
    "last_occurred_at",
)


# ----------------------------------------------------------------------------- phases


def _self_rss_mb() -> float:
    """Peak RSS of this process since its exec (VmHWM).

    NOTE: not ru_maxrss: Linux carries that across fork+exec, so a child of a parent
    holding 1 GB would report at least 1 GB.
    """
    with open("/proc/self/status") as status:
        for entry in status:
            if entry.startswith("VmHWM:"):
                return int(entry.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _normalised(frame: Any) -> Any:
    """Result rows with exact decimal text (6 places) and UTC microsecond timestamps."""
    import polars as pl

    def text(col: str) -> pl.Expr:
        return pl.col(col).cast(pl.String).str.replace(r"^(\d+)$", "${1}.000000")

    return (
        frame.select(RESULT_COLUMNS)
        .with_columns(
            text("quantity_sum"),
            text("quantity_max"),
            pl.col("event_count").cast(pl.Int64),
            pl.col("usage_date").cast(pl.Date),
            pl.col("first_occurred_at", "last_occurred_at")
            .cast(pl.Datetime("us", "UTC"))
            .dt.convert_time_zone("UTC"),
        )
        .sort("tenant_id", "metric", "usage_date")
    )


def phase_floor(fmt: str, files: list[str], out: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.sql("SELECT 1 AS warm_up").pl()  # imports and extension loading are not timed
    began = time.perf_counter()
    result = con.sql(FLOOR_SQL.format(source=FLOOR_SOURCES[fmt]), params={"files": files}).pl()
    seconds = time.perf_counter() - began
    _normalised(result).write_parquet(out)
    return {"seconds": seconds, "groups": result.height, "rss_self_mb": _self_rss_mb()}


def _usage_daily_frame(url: str, month_start: str, month_end: str) -> Any:
    import polars as pl
    import psycopg

    query = (
        "SELECT tenant_id, metric, usage_date, quantity_sum::text AS quantity_sum, event_count,"
        " quantity_max::text AS quantity_max, first_occurred_at, last_occurred_at"
        " FROM {table} WHERE usage_date >= %s AND usage_date < %s"
    )
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute(query.format(table="usage_daily"), (month_start, month_end))
        rows = cur.fetchall()
    return pl.DataFrame(rows, schema=list(RESULT_COLUMNS), orient="row")


def phase_ingest(
    files: list[str], warmup: list[str], out: Path, profile: str | None = None
) -> dict[str, Any]:
    from tallyflow.core import migrate
    from tallyflow.core.db import database_url, get_engine, to_libpq_url
    from tallyflow.core.settings import load_settings

    settings = load_settings()
    engine = get_engine(settings)
    migrate.upgrade(engine)
    from flows.ingest_usage import ingest_usage

    warm_began = time.perf_counter()
    ingest_usage(paths=warmup)
    warmup_seconds = time.perf_counter() - warm_began

    with _harness.profiled(profile or None):
        began = time.perf_counter()
        summary = ingest_usage(paths=files)
        seconds = time.perf_counter() - began

    # NOTE: the same paths again: every file is known, so the run commits at once. Its time
    # is what every run pays whatever it reads (Prefect, the lock, the lake guard).
    noop_began = time.perf_counter()
    rerun = ingest_usage(paths=files)
    noop_seconds = time.perf_counter() - noop_began
    if rerun["files"] or rerun["rows"]:
        raise AssertionError(f"the rerun read something: {rerun}")
    _normalised(
        _usage_daily_frame(to_libpq_url(database_url(settings)), f"{MONTH}-01", "2026-11-01")
    ).write_parquet(out)
    return {
        "seconds": seconds,
        "noop_seconds": noop_seconds,
        "warmup_seconds": warmup_seconds,
        "summary": summary,
        "rss_self_mb": _self_rss_mb(),
    }


def _copy_json_lines(cur: Any, files: list[str]) -> None:
    """Each JSON line verbatim into bench_raw_events (a .gz decompressed as it streams)."""
    import gzip

    with cur.copy(PG_COPY_SQL) as copy:
        for name in files:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(name, "rb") as handle:
                while chunk := handle.read(8 << 20):
                    copy.write(chunk)


def _copy_csv_files(cur: Any, files: list[str]) -> None:
    """Each CSV file (its header skipped) into bench_raw_rows: one COPY per file."""
    for name in files:
        with cur.copy(PG_COPY_CSV_SQL.format(header="true")) as copy, open(name, "rb") as handle:
            while chunk := handle.read(8 << 20):
                copy.write(chunk)


def _copy_parquet_files(cur: Any, files: list[str]) -> None:
    """Postgres reads no Parquet: each row batch (pyarrow) as CSV text (Polars), properties
    as JSON text, into bench_raw_rows."""
    import polars as pl
    import pyarrow.parquet as pq

    with cur.copy(PG_COPY_CSV_SQL.format(header="false")) as copy:
        for name in files:
            for batch in pq.ParquetFile(name).iter_batches(batch_size=250_000):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                if frame.schema["properties"] != pl.String:
                    frame = frame.with_columns(pl.col("properties").struct.json_encode())
                buffer = io.BytesIO()
                frame.select(
                    "event_id", "tenant_id", "metric", "quantity", "occurred_at", "properties"
                ).write_csv(buffer, include_header=False)
                copy.write(buffer.getvalue())


def phase_pg(fmt: str, files: list[str], out: Path) -> dict[str, Any]:
    import polars  # noqa: F401  (imports are not timed: the Parquet path needs both)
    import psycopg
    import pyarrow.parquet  # noqa: F401

    from tallyflow.core.db import database_url, to_libpq_url
    from tallyflow.core.settings import load_settings

    url = to_libpq_url(database_url(load_settings()))
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS tallyflow_bench_pg")
        admin.execute("CREATE DATABASE tallyflow_bench_pg")
    from sqlalchemy.engine import make_url

    bench_url = (
        make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
        .set(database="tallyflow_bench_pg")
        .render_as_string(hide_password=False)
        .replace("postgresql+psycopg://", "postgresql://", 1)
    )
    with psycopg.connect(bench_url) as conn:
        conn.execute(PG_CREATE_SQL)
        conn.commit()
        began = time.perf_counter()
        with conn.cursor() as cur:
            if fmt in ("jsonl", "jsonl.gz"):
                _copy_json_lines(cur, files)
            elif fmt == "csv":
                _copy_csv_files(cur, files)
            else:
                _copy_parquet_files(cur, files)
        copied = time.perf_counter()
        conn.execute(PG_AGGREGATE_SQL if fmt.startswith("jsonl") else PG_AGGREGATE_ROWS_SQL)
        conn.commit()
        seconds = time.perf_counter() - began
        copy_seconds = copied - began
    import polars as pl

    with psycopg.connect(bench_url) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute(
            "SELECT tenant_id, metric, usage_date, quantity_sum::text, event_count,"
            " quantity_max::text, first_occurred_at, last_occurred_at FROM bench_usage_daily"
        )
        frame = pl.DataFrame(cur.fetchall(), schema=list(RESULT_COLUMNS), orient="row")
    _normalised(frame).write_parquet(out)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS tallyflow_bench_pg")
    return {
        "seconds": seconds,
        "copy_seconds": copy_seconds,
        "aggregate_seconds": seconds - copy_seconds,
        "rss_self_mb": _self_rss_mb(),
    }


def run_phase(args: argparse.Namespace) -> None:
    files = json.loads(args.files)
    out = Path(args.out)
    if args.phase == "floor":
        result = phase_floor(args.format, files, out)
    elif args.phase == "ingest":
        result = phase_ingest(files, json.loads(args.warmup), out, args.profile)
    else:
        result = phase_pg(args.format, files, out)
    sys.stdout.write("\nRESULT " + json.dumps(result, default=str) + "\n")


# ------------------------------------------------------------------------ orchestration


def _tree_rss(proc: Any) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _spawn(phase: str, env: dict[str, str], **kwargs: str) -> dict[str, Any]:
    """Run one phase in a child; sample its process tree's RSS while it runs."""
    import psutil

    argv = [sys.executable, __file__, "--phase", phase]
    for key, value in kwargs.items():
        argv += [f"--{key}", value]
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak = max(peak, _tree_rss(proc))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        return {"error": f"exit code {child.returncode} (traceback above)"}
    line = next(ln for ln in reversed(stdout.splitlines()) if ln.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    result["rss_tree_peak_mb"] = peak / 2**20
    return result


def _compare(name: str, left: Any, right: Any) -> bool:
    equal = bool(left.equals(right))
    if not equal:
        joined = left.join(
            right, on=["tenant_id", "metric", "usage_date"], how="full", suffix="_other"
        )
        print(f"  MISMATCH {name}: {left.height} vs {right.height} rows; sample:")
        print(joined.head(5))
    return equal


def _formats(args: argparse.Namespace) -> list[str]:
    asked = args.formats or args.format or "jsonl"
    names = list(FORMATS) if asked == "all" else [f.strip() for f in asked.split(",")]
    unknown = [f for f in names if f not in FORMATS]
    if unknown:
        raise SystemExit(f"unknown format {', '.join(unknown)}: use {', '.join(FORMATS)} or all")
    return names


def _generate(fmt: str, data: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    """The bench's events (and oracle) and the warm-up files, in one format."""
    from tallyflow.synthetic.generate import UsageSpec, generate_usage

    kind = "jsonl" if fmt == "jsonl.gz" else fmt
    gz = fmt == "jsonl.gz"
    spec = UsageSpec(month=MONTH, tenants=args.tenants, events=args.events, seed=args.seed)
    generated = generate_usage(
        data / fmt / "events",
        spec,
        format=kind,  # type: ignore[arg-type]
        gzip=gz,
        files_by="rows",
        rows_per_file=args.rows_per_file,
        oracle_path=data / fmt / "oracle.parquet",
    )
    warm = generate_usage(
        data / fmt / "warmup",
        UsageSpec(month=WARMUP_MONTH, tenants=5, events=100, seed=args.seed),
        format=kind,  # type: ignore[arg-type]
        gzip=gz,
        files_by="rows",
        rows_per_file=1000,
    )
    return generated, warm


def run_format(
    fmt: str, workdir: Path, prefect_env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """Generate one format's files and run the three contenders on them; check the results."""
    import polars as pl

    from tallyflow.synthetic.generate import read_oracle

    data = workdir / "data"
    began = time.perf_counter()
    generated, warm = _generate(fmt, data, args)
    files = list(generated.files)
    size_mb = sum(Path(f).stat().st_size for f in files) / 2**20
    print(
        f"\n[{fmt}] generated {generated.rows:,} events, {len(files)} files, {size_mb:,.0f} MiB "
        f"in {time.perf_counter() - began:.1f} s"
    )
    for name in files:  # the page cache holds the files for every phase alike
        with open(name, "rb") as handle:
            while handle.read(16 << 20):
                pass

    home = workdir / f"home-{fmt}"
    env = _harness.scrubbed_env(home, PREFECT_LOGGING_LEVEL="WARNING") | prefect_env
    results: dict[str, dict[str, Any]] = {}
    outputs = {p: workdir / f"{fmt}-{p}.parquet" for p in ("floor", "ingest", "pg")}
    try:
        # NOTE: Postgres starts here, in the parent: no phase pays its start-up, and it is
        # not a descendant counted in a phase's RSS.
        _harness.start_embedded_postgres(home)
        for phase in ("floor", "ingest", "pg"):
            if phase in args.skip:
                continue
            extra = {"warmup": json.dumps(list(warm.files))} if phase == "ingest" else {}
            if phase == "ingest" and args.profile:
                extra["profile"] = str(Path(args.profile).resolve())
            results[phase] = _spawn(
                phase,
                env,
                format=fmt,
                files=json.dumps(files),
                out=str(outputs[phase]),
                **extra,
            )
            r = results[phase]
            if "error" in r:
                print(f"{phase:>7}: FAILED, {r['error']}")
                continue
            print(
                f"{phase:>7}: {r['seconds']:7.2f} s  {args.events / r['seconds']:>12,.0f} events/s"
                f"  peak RSS {r['rss_self_mb']:,.0f} MiB (process), "
                f"{r['rss_tree_peak_mb']:,.0f} MiB (process tree, sampled)"
            )
            if phase == "pg":
                print(
                    f"         COPY {r['copy_seconds']:.2f} s + INSERT ... SELECT ... GROUP BY "
                    f"{r['aggregate_seconds']:.2f} s"
                )
            if phase == "ingest":
                print(
                    f"         warm-up ingest (not timed) {r['warmup_seconds']:.1f} s; no-op"
                    f" rerun of the same paths (a run's fixed cost) {r['noop_seconds']:.2f} s"
                )
    finally:
        _harness.stop_embedded_postgres(home)

    failed = [p for p, r in results.items() if "error" in r]
    results = {p: r for p, r in results.items() if "error" not in r}
    oracle = read_oracle(data / fmt / "oracle.parquet")
    checks: dict[str, bool] = {}
    reference = None
    if "floor" in results:
        reference = pl.read_parquet(outputs["floor"])
        oracle_norm = oracle.with_columns(
            pl.col("first_occurred_at", "last_occurred_at").cast(pl.Datetime("us", "UTC"))
        ).select(RESULT_COLUMNS)
        checks["floor == generator oracle"] = _compare("floor/oracle", reference, oracle_norm)
    for phase in ("ingest", "pg"):
        if phase in results and reference is not None:
            got = pl.read_parquet(outputs[phase])
            checks[f"{phase} == floor"] = _compare(f"{phase}/floor", got, reference)
    if "ingest" in results:
        s = results["ingest"]["summary"]
        checks["ingest counts"] = (s["accepted"], s["rejected"]) == (args.events, 0)
    for name, ok in checks.items():
        print(f"  check {name}: {'OK' if ok else 'FAILED'}")
    ratios: dict[str, float] = {}
    if "ingest" in results and "floor" in results:
        ratios["ingest / floor"] = results["ingest"]["seconds"] / results["floor"]["seconds"]
    if "ingest" in results and "pg" in results:
        ratios["pg path / ingest"] = results["pg"]["seconds"] / results["ingest"]["seconds"]
    for name, value in ratios.items():
        print(f"  {name}: {value:.2f}x")
    return {
        "format": fmt,
        "files": len(files),
        "size_mib": size_mb,
        "results": results,
        "ratios": ratios,
        "checks": checks,
        "failed": failed,
    }


def _table(runs: list[dict[str, Any]], events: int) -> str:
    """The runs as one Markdown table, with the ratios against the targets."""
    lines = [
        "| format | contender | time | events/s | peak RSS (tree) | vs target |",
        "|---|---|---|---|---|---|",
    ]
    names = {"floor": "(b) DuckDB floor", "ingest": "(a) full ingest flow", "pg": "(c) PG path"}
    for run in runs:
        first = f"{run['format']} ({run['size_mib']:,.0f} MiB, {run['files']} files)"
        for phase in ("floor", "ingest", "pg"):
            r = run["results"].get(phase)
            if r is None:
                continue
            target = ""
            if phase == "ingest":
                target = f"{events / r['seconds'] / 1e6:.2f}M events/s (>= 1M)"
                if "ingest / floor" in run["ratios"]:
                    target += f"; {run['ratios']['ingest / floor']:.2f}x floor (<= 2.5x)"
            if phase == "pg" and "pg path / ingest" in run["ratios"]:
                target = f"{run['ratios']['pg path / ingest']:.2f}x ingest (>= 5x)"
            what = names[phase]
            if phase == "pg":
                what += f": COPY {r['copy_seconds']:.2f} s + INSERT {r['aggregate_seconds']:.2f} s"
            lines.append(
                f"| {first} | {what} | {r['seconds']:.2f} s | {events / r['seconds']:,.0f} "
                f"| {r['rss_tree_peak_mb']:,.0f} MiB | {target} |"
            )
            first = ""
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--format", choices=FORMATS, help="One input format (default jsonl)")
    parser.add_argument(
        "--formats", help="Several, comma-separated (jsonl,csv,parquet,jsonl.gz), or all"
    )
    parser.add_argument("--workdir", help="Keep files here (default: a temp dir, removed)")
    parser.add_argument("--skip", action="append", default=[], choices=["ingest", "floor", "pg"])
    parser.add_argument("--json", action="store_true", help="Print one JSON object at the end")
    parser.add_argument(
        "--profile", help="write a cProfile of the timed flow call to this file (one format)"
    )
    parser.add_argument("--phase", choices=["floor", "ingest", "pg"], help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args)
        return
    formats = _formats(args)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tallyflow-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"{_harness.utc_stamp()}, commit {_harness.commit()}, load average "
        f"{_harness.load_average()} (start); {args.events:,} events; formats "
        f"{', '.join(formats)}; {workdir}"
    )
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        prefect_env: dict[str, str] = {}
        if "ingest" not in args.skip:
            prefect_env = stack.enter_context(_harness.prefect_server(workdir / "prefect"))
        for fmt in formats:
            runs.append(run_format(fmt, workdir, prefect_env, args))
    print(
        f"\n{_harness.utc_stamp()}, load average {_harness.load_average()} (end)\n\n"
        + _table(runs, args.events)
    )
    if args.json:
        print(json.dumps({"events": args.events, "runs": runs}, default=str))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    if any(r["failed"] or not all(r["checks"].values()) for r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
