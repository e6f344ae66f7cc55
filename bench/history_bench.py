"""Ingest cost with history (issue 12 item 3): a no-op ingest and an ingest of one small
file, with 1 day and with 365 days of lake, each beside 10,000 already-ingested landing
files (copies of one small file: see the NOTE in run_history), side by side in one run.

    uv run python bench/history_bench.py                      # 1 vs 365 days, 10,000 files
    # --days 1 365 --landing-files 10000 --events-per-day 1000 --small-events 100
    # --repeats 5 --workdir DIR --json

For each history (a fresh TALLYFLOW_HOME, its own embedded Postgres): one JSONL file of
`events-per-day` events a day for `days` days is ingested (one lake file a day), then
`landing-files` one-event files in the landing folder are ingested (untimed set-up, its
time printed). Timed, `repeats` times each, median printed (the flow call
`flows.ingest_usage.ingest_usage()` on the landing folder, against one background Prefect server
started once for the whole run):

- no-op: nothing new (every landing file known);
- small file: one new file of `small-events` events on the history's last day dropped in
  the landing folder, then the run (its 10,000 neighbours are skipped).

Exits 1 when the usage of the last day differs from what was ingested (a correctness
check, not a timing assertion).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import _harness
import polars as pl

sys.path.insert(0, str(_harness.ROOT))

LAST_DAY = date(2026, 10, 31)


def _events(ids: str, first: int, n: int, days: list[date]) -> pl.DataFrame:
    i = pl.int_range(first, first + n, eager=True)
    day = pl.Series([d.isoformat() for d in days]).gather(i % len(days))
    return pl.DataFrame(
        {
            "event_id": ids + i.cast(pl.String),
            "tenant_id": "t" + (i % 50).cast(pl.String),
            "metric": "api.calls",
            "quantity": "1.5",
            "occurred_at": day + "T" + ((i % 24).cast(pl.String).str.zfill(2)) + ":00:00Z",
        }
    )


def _write_jsonl(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_ndjson(path)


def run_history(work: Path, days: int, args: argparse.Namespace) -> dict[str, Any]:
    from flows.ingest_usage import ingest_usage
    from tallyflow.core import migrate
    from tallyflow.core.db import get_engine
    from tallyflow.core.settings import load_settings

    home = work / f"home-{days}"
    _harness.use_home(home)
    settings = load_settings()
    engine = get_engine(settings)
    migrate.upgrade(engine)
    landing = settings.landing_path
    landing.mkdir(parents=True, exist_ok=True)
    history_days = [LAST_DAY - timedelta(days=k) for k in range(days)][::-1]

    began = time.perf_counter()
    history = work / f"history-{days}.jsonl"
    _write_jsonl(_events("h", 0, days * args.events_per_day, history_days), history)
    ingest_usage(paths=[str(history)])
    history_s = time.perf_counter() - began

    began = time.perf_counter()
    # NOTE: the landing files are copies of one small file (distinct paths, one content):
    # a first run of 10,000 distinct files costs ~70 ms a file here (validation and dedupe
    # of each part), 12 min per history; what a no-op run does with a known file (list,
    # compare its size and mtime) does not depend on its content. The second set-up run
    # hashes the copies once and records their size and mtime, as a user's next run would.
    _write_jsonl(_events("s", 0, 1, [LAST_DAY]), landing / "00" / "s00000.jsonl")
    data = (landing / "00" / "s00000.jsonl").read_bytes()
    for k in range(1, args.landing_files):
        target = landing / f"{k // 1000:02d}" / f"s{k:05d}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    setup = ingest_usage()
    assert setup["files"] == 1 and setup["skipped_files"] == args.landing_files - 1, setup
    setup = ingest_usage()
    assert setup["files"] == 0 and setup["skipped_files"] == args.landing_files, setup
    landing_s = time.perf_counter() - began

    noop: list[float] = []
    small: list[float] = []
    for r in range(args.repeats):
        began = time.perf_counter()
        result = ingest_usage()
        noop.append(time.perf_counter() - began)
        assert result["rows"] == 0 and result["skipped_files"] == args.landing_files + r, result

        _write_jsonl(
            _events(f"n{r}-", 0, args.small_events, [LAST_DAY]), landing / f"new-{r}.jsonl"
        )
        began = time.perf_counter()
        result = ingest_usage()
        small.append(time.perf_counter() - began)
        assert result["accepted"] == args.small_events, result

    with engine.connect() as conn:
        import sqlalchemy as sa

        total, count = conn.execute(
            sa.text(
                "SELECT sum(quantity_sum), sum(event_count) FROM usage_daily WHERE usage_date = :d"
            ),
            {"d": LAST_DAY},
        ).one()
        lake_files = conn.execute(sa.text("SELECT count(*) FROM lake_files")).scalar_one()
    expected = args.events_per_day + 1 + args.repeats * args.small_events
    ok = count == expected and total == Decimal("1.5") * expected
    engine.dispose()
    return {
        "days": days,
        "history_events": days * args.events_per_day,
        "lake_files": lake_files,
        "history_ingest_s": history_s,
        "landing_setup_s": landing_s,
        "noop_s": noop,
        "small_s": small,
        "correct": ok,
        "home": str(home),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 365])
    parser.add_argument("--landing-files", type=int, default=10_000)
    parser.add_argument("--events-per-day", type=int, default=1_000)
    parser.add_argument("--small-events", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--workdir", default=None, help="Keep files here (default: a temp dir, removed)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tallyflow-history-bench-"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    print(
        f"{_harness.utc_stamp()}, commit {_harness.commit()}, load average "
        f"{_harness.load_average()}, workdir {work}"
    )
    results = []
    try:
        # NOTE: one warm background Prefect server for the whole run (the same one the
        # other ingest benches use), started before any history.
        with _harness.prefect_server(work / "prefect"):
            for days in args.days:
                results.append(run_history(work, days, args))
                r = results[-1]
                print(
                    f"{days:>4} days: history {r['history_events']:,} events ingested in "
                    f"{r['history_ingest_s']:.1f} s ({r['lake_files']} lake files after), "
                    f"{args.landing_files:,} landing files ingested in "
                    f"{r['landing_setup_s']:.1f} s"
                )
    finally:
        for days in args.days:
            _harness.stop_embedded_postgres(work / f"home-{days}")
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{_harness.utc_stamp()}, load average after: {_harness.load_average()}")
    print(f"{'history':>10} | {'no-op ingest (median, min)':>28} | {'one small file':>24}")
    for r in results:
        print(
            f"{r['days']:>5} days | {statistics.median(r['noop_s']):>10.3f} s "
            f"({min(r['noop_s']):.3f} s)       | {statistics.median(r['small_s']):>8.3f} s "
            f"({min(r['small_s']):.3f} s)"
        )
    if len(results) == 2:
        a, b = results
        print(
            f"ratio {b['days']} / {a['days']} days: no-op "
            f"{statistics.median(b['noop_s']) / statistics.median(a['noop_s']):.2f}x, small file "
            f"{statistics.median(b['small_s']) / statistics.median(a['small_s']):.2f}x "
            "(target: 1.0x, the same time)"
        )
    if args.json:
        print(json.dumps(results, indent=2))
    if not all(r["correct"] for r in results):
        print("FAILED: usage of the last day differs from what was ingested")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
