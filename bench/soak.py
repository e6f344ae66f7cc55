"""Soak: the API at a steady rate for a few minutes, pushed ingest and quota checks mixed,
with ingest runs draining the inbox meanwhile. Run by hand (not a test):

    uv run python bench/soak.py [--minutes 3] [--rate 50] [--push-share 0.1]
                                [--batch 50] [--tenants 1000] [--max-requests 200000]

Bounded in time (--minutes) and count (--max-requests). Seeds a throwaway embedded
Postgres like bench/quota_check_bench.py, starts the API as `tallyflow serve` does, and
sends requests on a fixed schedule (open loop: a slow answer does not slow the schedule)
from an async httpx client: `--rate` requests/s, `--push-share` of them
`POST usage:ingest` with `--batch` new events, the rest quota checks. Every 20 s an ingest
run (the real flow's body, `flows.ingest_usage.run_ingest`) drains the inbox, so quota
answers change under load. Reports errors (any non-2xx or transport error: must be 0),
latency percentiles per kind, the API process's RSS at start and end (memory growth), and
checks that every accepted pushed event was drained into the lake exactly once.

NOTE: the load generator is one Python process (httpx): it saturates a core at about 90
requests/s here; keep --rate below that (use wrk for more, as quota_check_bench.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quota_check_bench import METRICS, free_port, seed, start_api  # noqa: E402

from tallyflow.core.db import dispose_engines, get_engine, to_sqlalchemy_url  # noqa: E402
from tallyflow.core.settings import Settings  # noqa: E402


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(values),
        "p50_ms": round(pick(0.50) * 1000, 2),
        "p90_ms": round(pick(0.90) * 1000, 2),
        "p99_ms": round(pick(0.99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


def drain_loop(stop_file: Path, result_file: Path, every: float) -> None:
    """Child process: run the ingest (inbox only) every `every` seconds until stop_file
    exists, then once more; append each run's summary to result_file (JSON lines).

    NOTE: a separate process, so the ingest's CPU and GIL do not slow the load generator."""
    import json

    from prefect.testing.utilities import prefect_test_harness

    from flows.ingest_usage import ingest_usage

    with prefect_test_harness(server_startup_timeout=120):
        while True:
            last = stop_file.exists()
            summary = ingest_usage(paths=[tempfile.mkdtemp()])
            with result_file.open("a") as out:
                out.write(json.dumps(summary) + "\n")
            if last:
                return
            deadline = time.monotonic() + every
            while time.monotonic() < deadline and not stop_file.exists():
                time.sleep(0.2)


async def drive(
    args: argparse.Namespace, base: str, read: str, write: str, tenants: list[str]
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {"check": [], "push": []}
    errors: list[str] = []
    pushed = 0
    counter = 0
    rng = random.Random(7)
    total = min(int(args.minutes * 60 * args.rate), args.max_requests)
    interval = 1.0 / args.rate
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def one(i: int) -> None:
            nonlocal pushed, counter
            tenant = rng.choice(tenants)
            started = time.perf_counter()
            try:
                if rng.random() < args.push_share:
                    kind = "push"
                    now = dt.datetime.now(dt.UTC).isoformat()
                    events = []
                    for _ in range(args.batch):
                        counter += 1
                        events.append(
                            {
                                "event_id": f"soak-{counter}",
                                "tenant_id": tenant,
                                "metric": rng.choice(METRICS),
                                "quantity": "1",
                                "occurred_at": now,
                            }
                        )
                    answer = await client.post(
                        "/api/billing/usage:ingest",
                        json={"events": events},
                        headers={"Authorization": f"Bearer {write}"},
                    )
                    if answer.status_code == 202:
                        pushed += answer.json()["accepted"]
                else:
                    kind = "check"
                    answer = await client.post(
                        f"/api/billing/tenants/{tenant}/quotas:check",
                        json={"metric": rng.choice(METRICS), "quantity": "1"},
                        headers={"Authorization": f"Bearer {read}"},
                    )
                if answer.status_code >= 300:
                    errors.append(f"{kind} {answer.status_code} {answer.text[:200]}")
            except httpx.HTTPError as exc:
                kind = "transport"
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.setdefault(kind, []).append(time.perf_counter() - started)

        began = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = began + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    return {
        "requests": total,
        "seconds": round(elapsed, 1),
        "achieved_rate": round(total / elapsed, 1),
        "errors": errors,
        "pushed_accepted": pushed,
        "latency": {k: percentiles(v) for k, v in latencies.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--push-share", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=50, help="events per push")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument(
        "--drain-every", type=float, default=20.0, help="seconds between ingest runs"
    )
    parser.add_argument("--drain-loop", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain_loop:
        drain_loop(args.drain_loop[0], args.drain_loop[1], args.drain_every)
        return

    home = Path(tempfile.mkdtemp(prefix="tallyflow-soak-"))
    import pgserver

    server = pgserver.get_server(home / "pg", cleanup_mode="delete")
    url = to_sqlalchemy_url(server.get_uri())
    settings = Settings(home=home, database_url=url)
    os.environ.update(
        {
            "TALLYFLOW_HOME": str(home),
            "TALLYFLOW_DATABASE_URL": url,
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    seeded = seed(settings, args.tenants)
    print(f"seeded: {seeded['quota_usage_rows']} quota rows for {args.tenants} tenants", flush=True)
    port = free_port()
    api = start_api(url, port)
    proc = psutil.Process(api.pid)
    rss_start = proc.memory_info().rss
    stop_file, result_file = home / "stop", home / "runs.jsonl"
    drainer = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--drain-loop",
            str(stop_file),
            str(result_file),
            "--drain-every",
            str(args.drain_every),
        ],
        env=os.environ.copy(),
    )
    try:
        tenants = [f"t{i:05d}" for i in range(args.tenants)]
        result = asyncio.run(
            drive(
                args,
                f"http://127.0.0.1:{port}",
                str(seeded["read_key"]),
                str(seeded["write_key"]),
                tenants,
            )
        )
        rss_end = proc.memory_info().rss
    finally:
        stop_file.touch()
        drainer.wait(600)
        api.terminate()
        api.wait(10)
    runs = [json.loads(line) for line in result_file.read_text().splitlines()]
    engine = get_engine(settings)
    with engine.connect() as conn:
        drained = conn.execute(
            sa.text("SELECT count(*) FROM ingest_inbox WHERE drained_run_id IS NOT NULL")
        ).scalar_one()
    dispose_engines()
    print(
        f"requests: {result['requests']} in {result['seconds']} s "
        f"({result['achieved_rate']} req/s, target {args.rate})"
    )
    print(f"errors: {len(result['errors'])}")
    for line in result["errors"][:10]:
        print(f"  {line}")
    for kind, stats in result["latency"].items():
        print(f"latency {kind}: {stats}")
    print(
        f"API RSS: start {rss_start / 2**20:.1f} MiB, end {rss_end / 2**20:.1f} MiB, "
        f"growth {(rss_end - rss_start) / 2**20:+.1f} MiB"
    )
    into_lake = sum(r["accepted"] for r in runs)
    print(
        f"ingest runs: {len(runs)}; pushed events accepted {result['pushed_accepted']}, "
        f"drained {drained}, accepted into the lake by the runs {into_lake}"
    )
    ok = not result["errors"] and drained == into_lake == result["pushed_accepted"]
    server.cleanup()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
