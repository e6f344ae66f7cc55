"""Scaling-out figures: the same events ingested with landing + lake on a local S3 server
(moto, loopback) vs local disk, and a 31-day backfill in one process vs two Dask workers.

    uv run python bench/scaling_bench.py --events 200000
    # --skip-s3 (local disk and the backfills only)  --profile FILE (cProfile of the Dask
    # backfill in the flow's process, top functions by cumulative time to FILE)

Everything is real and started here (embedded Postgres, a Prefect test server, moto's S3
server, a LocalCluster with two worker processes) and stopped at the end. Each variant
runs into its own fresh database; the script checks that their usage_daily rows are equal.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import logging
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tf-scaling-"))
    work.chmod(0o755)
    os.environ.update(
        PREFECT_HOME=str(work / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_REGION="eu-west-1",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    import pgserver
    import sqlalchemy as sa
    from distributed import Client, LocalCluster, get_task_stream
    from moto.server import ThreadedMotoServer
    from prefect.testing.utilities import prefect_test_harness
    from sqlalchemy.engine import make_url

    from flows.backfill_usage import backfill_usage
    from flows.ingest_usage import ingest_usage
    from services.ingest.backfill import committed_day_files, compute_day_usage
    from tallyflow.core import migrate, storage
    from tallyflow.core.db import get_engine, to_sqlalchemy_url
    from tallyflow.core.settings import Settings
    from tallyflow.synthetic.generate import UsageSpec, generate_usage

    server = pgserver.get_server(work / "pg", cleanup_mode="delete")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    base = to_sqlalchemy_url(server.get_uri())

    def database() -> str:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with get_engine(Settings(database_url=base)).connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                sa.text(f'CREATE DATABASE "{name}"')
            )
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(get_engine(Settings(database_url=url)))
        return url

    def use(url: str, landing: str, lake: str, dask: str | None = None) -> None:
        os.environ.update(
            TALLYFLOW_DATABASE_URL=url, TALLYFLOW_LANDING=landing, TALLYFLOW_LAKE=lake
        )
        os.environ.pop("TALLYFLOW_DASK_ADDRESS", None)
        if dask:
            os.environ["TALLYFLOW_DASK_ADDRESS"] = dask

    def daily(url: str) -> list[tuple[object, ...]]:
        with get_engine(Settings(database_url=url)).connect() as conn:
            q = "SELECT * FROM usage_daily ORDER BY tenant_id, metric, usage_date"
            return [tuple(r)[:8] for r in conn.execute(sa.text(q))]

    def table_sizes(url: str) -> dict[str, int]:
        """pg_total_relation_size (table + indexes + TOAST) of every non-empty table, bytes."""
        q = "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables ORDER BY 2 DESC"
        with get_engine(Settings(database_url=url)).connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            return {r[0]: int(r[1]) for r in conn.execute(sa.text(q)) if r[1] > 16384}

    spec = UsageSpec(
        month="2026-10",
        tenants=200,
        events=args.events,
        seed=5,
        now=dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
    )
    landing = work / "landing"
    generate_usage(landing, spec, format="jsonl", files_by="rows", rows_per_file=100_000)
    warm = work / "warm"
    generate_usage(warm, UsageSpec(month="2026-09", tenants=3, events=200, seed=1), format="jsonl")
    fs = storage.filesystem("s3://")
    fs.mkdir("bench")
    for p in sorted(landing.rglob("*.jsonl")):
        storage.write_bytes(f"s3://bench/landing/{p.name}", p.read_bytes())
    results: dict[str, float] = {}
    with prefect_test_harness(server_startup_timeout=180):
        runs = {}
        variants = [("local_disk", str(landing), str(work / "lake-local"))]
        if not args.skip_s3:
            variants.append(("s3", "s3://bench/landing", "s3://bench/lake"))
        for name, land, lake in variants:
            url = database()
            use(url, land, lake)
            ingest_usage(paths=[str(warm)])  # imports, first flow run: not timed
            start = time.perf_counter()
            out = ingest_usage()
            results[f"ingest_{name}_s"] = round(time.perf_counter() - start, 2)
            results[f"ingest_{name}_accepted"] = out["accepted"]
            runs[name] = url
            if name == "local_disk":
                sizes = table_sizes(url)
                results["pg_bytes_after_local_ingest"] = sum(sizes.values())
                results["pg_bytes_by_table"] = sizes  # type: ignore[assignment]
        if not args.skip_s3:
            assert daily(runs["local_disk"]) == daily(runs["s3"]), "S3 and local disk differ"

        url = runs["local_disk"]
        start = time.perf_counter()
        use(url, str(landing), str(work / "lake-local"))
        backfill_usage(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 31))
        results["backfill_31_days_in_process_s"] = round(time.perf_counter() - start, 2)
        before = daily(url)
        with LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster:
            use(url, str(landing), str(work / "lake-local"), cluster.scheduler_address)
            backfill_usage(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 2))  # warm workers
            client = Client(cluster.scheduler_address)
            profiler = cProfile.Profile() if args.profile else None
            start = time.perf_counter()
            with get_task_stream(client=client) as stream:
                if profiler:
                    profiler.enable()
                backfill_usage(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 31))
                if profiler:
                    profiler.disable()
            results["backfill_31_days_two_dask_workers_s"] = round(time.perf_counter() - start, 2)
            results |= task_stream_summary(stream.data, "dask_prefect")
            if profiler and args.profile:
                with args.profile.open("w") as out:
                    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
            # The same 31 day computations as bare Dask tasks (no Prefect task run around
            # them): what Dask itself costs here.
            with get_engine(Settings(database_url=url)).connect() as conn:
                days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(31)]
                files = committed_day_files(conn, str(work / "lake-local"), days)
            start = time.perf_counter()
            with get_task_stream(client=client) as stream:
                futures = [
                    client.submit(compute_day_usage, files[d], None, pure=False) for d in days
                ]
                client.gather(futures)
            results["compute_31_days_bare_dask_s"] = round(time.perf_counter() - start, 2)
            results |= task_stream_summary(stream.data, "dask_bare")
            client.close()
        start = time.perf_counter()
        for d in days:
            compute_day_usage(files[d], None)
        results["compute_31_days_bare_in_process_s"] = round(time.perf_counter() - start, 2)
        assert daily(url) == before, "Dask backfill differs"
    moto.stop()
    server.cleanup()
    results["events"] = args.events
    results["cpus"] = os.cpu_count() or 0
    print(json.dumps(results, indent=2))


def task_stream_summary(records: list[dict[str, Any]], prefix: str) -> dict[str, float]:
    """Tasks, summed and longest worker compute seconds, and summed transfer seconds, from
    distributed's task stream."""
    compute = [
        ss["stop"] - ss["start"]
        for r in records
        for ss in r.get("startstops", [])
        if ss["action"] == "compute"
    ]
    transfer = [
        ss["stop"] - ss["start"]
        for r in records
        for ss in r.get("startstops", [])
        if ss["action"] in ("transfer", "disk-read", "deserialize")
    ]
    return {
        f"{prefix}_tasks": len(records),
        f"{prefix}_compute_sum_s": round(sum(compute), 2),
        f"{prefix}_compute_max_s": round(max(compute, default=0.0), 2),
        f"{prefix}_transfer_sum_s": round(sum(transfer), 2),
    }


if __name__ == "__main__":
    main()
