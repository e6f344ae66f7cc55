"""Billable metrics benchmark (issue 13): an ingest of N events with five billable metrics
defined against the same ingest with none.

    uv run python bench/metrics_bench.py                  # 2,000,000 events
    uv run python bench/metrics_bench.py --events 200000  # a quick look

Generates N clean events of one month with the billable properties (tallyflow.synthetic.generate,
`billable_properties`: 20 models, 4 regions, 100,000 user ids, a latency, a level), JSONL,
1M rows a file. Then, each in its own child process with a fresh TALLYFLOW_HOME (embedded
Postgres) and its own Prefect test server, after a tiny warm-up ingest of another month:

  (none)  the full `ingest_usage` flow over the files, no billable metric defined;
  (five)  the same with five billable metrics: tokens by model (20 groups, sum), mau
          (unique_count over 100,000 user ids), storage (time_weighted_sum of a level),
          p95 latency (percentile), eu calls (sum with a region filter).

Prints the flow's wall time of each and the ratio (target <= 1.5x), and the number of
metric_usage rows written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MONTH = "2026-10"
WARMUP_MONTH = "2026-09"

FIVE_METRICS: list[dict[str, Any]] = [
    {"code": "tokens", "event_metric": "api.calls", "aggregation": "sum", "group_by": ["model"]},
    {
        "code": "mau",
        "event_metric": "api.calls",
        "aggregation": "unique_count",
        "value": "properties.user_id",
    },
    {
        "code": "storage",
        "event_metric": "storage.gb_hours",
        "aggregation": "time_weighted_sum",
        "value": "properties.level",
    },
    {
        "code": "p95_latency",
        "event_metric": "compute.seconds",
        "aggregation": "percentile",
        "percentile": "95",
        "value": "properties.latency_ms",
    },
    {
        "code": "eu_calls",
        "event_metric": "api.calls",
        "aggregation": "sum",
        "filters": {"region": ["eu-west", "eu-central"]},
    },
]


def child(config: str, landing: Path, warmup: Path, home: Path) -> dict[str, Any]:
    os.environ["TALLYFLOW_HOME"] = str(home)
    os.environ["TALLYFLOW_LAKE"] = str(home / "lake")
    os.environ["TALLYFLOW_LANDING"] = str(home / "landing")
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    import pgserver

    # NOTE: our own embedded Postgres, stopped when the child is done (nothing left behind).
    server = pgserver.get_server(home / "pg", cleanup_mode="stop")
    try:
        from tallyflow.core.db import to_sqlalchemy_url

        os.environ["TALLYFLOW_DATABASE_URL"] = to_sqlalchemy_url(server.get_uri())
        return _timed(config, landing, warmup)
    finally:
        from tallyflow.core.db import dispose_engines

        dispose_engines()
        server.cleanup()


def _timed(config: str, landing: Path, warmup: Path) -> dict[str, Any]:
    from prefect.testing.utilities import prefect_test_harness

    from flows.ingest_usage import ingest_usage
    from services.metrics.catalog import create_metric
    from tallyflow.core import migrate
    from tallyflow.core.db import get_engine
    from tallyflow.core.settings import load_settings

    engine = get_engine(load_settings())
    migrate.upgrade(engine)
    if config == "five":
        with engine.begin() as conn:
            for m in FIVE_METRICS:
                create_metric(conn, m)
    with prefect_test_harness(server_startup_timeout=180):
        ingest_usage(paths=[str(warmup)])
        began = time.perf_counter()
        result = ingest_usage(paths=[str(landing)])
        seconds = time.perf_counter() - began
    with engine.connect() as conn:
        import sqlalchemy as sa

        metric_rows = conn.execute(sa.text("SELECT count(*) FROM metric_usage")).scalar_one()
    return {
        "config": config,
        "seconds": round(seconds, 2),
        "accepted": result["accepted"],
        "metric_rows": metric_rows,
        "metric_unreadable": result.get("metric_unreadable", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--child", choices=["none", "five"])
    parser.add_argument("--landing")
    parser.add_argument("--warmup")
    parser.add_argument("--home")
    args = parser.parse_args()
    if args.child:
        out = child(args.child, Path(args.landing), Path(args.warmup), Path(args.home))
        print(json.dumps(out))
        return

    from tallyflow.synthetic.generate import UsageSpec, generate_usage

    work = Path(tempfile.mkdtemp(prefix="tallyflow-metrics-bench-"))
    landing, warmup = work / "landing", work / "warmup"
    spec = UsageSpec(
        month=MONTH, tenants=args.tenants, events=args.events, seed=42, billable_properties=True
    )
    generate_usage(landing, spec, files_by="rows", rows_per_file=1_000_000)
    generate_usage(
        warmup,
        UsageSpec(month=WARMUP_MONTH, tenants=5, events=100, seed=1, billable_properties=True),
    )
    results = {}
    for config in ("none", "five"):
        home = work / config
        home.mkdir()
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                config,
                "--landing",
                str(landing),
                "--warmup",
                str(warmup),
                "--home",
                str(home),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[config] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(results[config]), flush=True)
    ratio = results["five"]["seconds"] / results["none"]["seconds"]
    print(
        f"{args.events:,} events: no metrics {results['none']['seconds']} s, five billable"
        f" metrics {results['five']['seconds']} s: {ratio:.2f}x (target <= 1.5x);"
        f" {results['five']['metric_rows']:,} metric_usage rows"
    )
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
