"""TALLYFLOW_DASK_ADDRESS: the ingest's per-file validation and the backfill's per-day
computation run as Prefect tasks on a real Dask cluster (a LocalCluster with two worker
processes), with results identical, row for row, to an in-process run of the same input."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from flows.backfill_usage import backfill_usage
from flows.ingest_usage import ingest_usage
from tallyflow.core.db import get_engine
from tallyflow.core.settings import Settings
from tallyflow.synthetic.generate import UsageSpec, generate_usage
from tests.helpers import usage_full
from tests.storage.test_s3_runs import DAILY, outcome

pytestmark = pytest.mark.usefixtures("prefect_harness")

SPEC = UsageSpec(
    month="2026-10",
    tenants=10,
    events=3000,
    seed=41,
    duplicates=0.03,
    conflicts=0.02,
    late=0.03,
    bad=0.05,
    now=dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
)


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """A LocalCluster with two worker processes, closed after the module's tests."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        yield str(cluster.scheduler_address)


def _task_stream(client: Any) -> Any:
    """A recorder of the tasks the cluster executes inside a `with` block."""
    from distributed import get_task_stream

    return get_task_stream(client=client)


def _switch(
    monkeypatch: pytest.MonkeyPatch, database_url: str, lake: Path, dask: str | None
) -> Engine:
    monkeypatch.setenv("TALLYFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("TALLYFLOW_LAKE", str(lake))
    if dask:
        monkeypatch.setenv("TALLYFLOW_DASK_ADDRESS", dask)
    else:
        monkeypatch.delenv("TALLYFLOW_DASK_ADDRESS", raising=False)
    return get_engine(Settings(database_url=database_url))


def _damage(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM usage_daily WHERE usage_date = '2026-10-03'"))
        conn.execute(
            sa.text("UPDATE usage_daily SET quantity_sum = 0 WHERE usage_date = '2026-10-04'")
        )


def test_ingest_and_backfill_on_dask_equal_in_process_row_for_row(
    settings: Settings,
    other_database_url: str,
    dask_address: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    landing = settings.landing_path
    generate_usage(landing, SPEC, format="jsonl", files_by="rows", rows_per_file=500)
    generate_usage(
        landing / "csv", SPEC, format="csv", gzip=True, files_by="rows", rows_per_file=800
    )
    good = gzip.compress(b'{"event_id":"x"}\n')
    (landing / "broken.jsonl.gz").write_bytes(good[: len(good) // 2])
    n_files = sum(1 for p in landing.rglob("*") if p.is_file())

    # in process
    local = _switch(monkeypatch, settings.database_url or "", tmp_path / "lake-a", None)
    in_process = ingest_usage()
    _damage(local)
    assert backfill_usage(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 31))["days"] == 31

    # on the cluster, into a second database and lake
    remote = _switch(monkeypatch, other_database_url, tmp_path / "lake-b", dask_address)
    from distributed import Client

    client = Client(dask_address, set_as_default=False)
    try:
        with _task_stream(client) as stream:
            on_dask = ingest_usage()
        validated, ran_on = len(stream.data), {t["worker"] for t in stream.data}
        ingested = usage_full(remote)
        _damage(remote)
        with _task_stream(client) as stream:
            backfilled = backfill_usage(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 31))
        computed = len(stream.data)
        ran_on |= {t["worker"] for t in stream.data}
        workers = set(client.scheduler_info()["workers"])
    finally:
        client.close()

    assert validated == n_files  # one task per landing file, on the cluster
    assert computed == 2  # one run of consecutive days per worker thread (2 workers x 1)
    assert ran_on <= workers
    assert on_dask == in_process
    assert backfilled == {"days": 31, "rows_written": len(ingested)}
    assert [r[DAILY] for r in usage_full(remote)] == [r[DAILY] for r in ingested]
    assert outcome(remote) == outcome(local)


@pytest.mark.parametrize(
    ("count", "parts"), [(1, 1), (1, 4), (31, 1), (31, 2), (31, 4), (7, 7), (3, 8)]
)
def test_backfill_days_go_to_workers_in_consecutive_runs(count: int, parts: int) -> None:
    from flows.backfill_usage import day_chunks

    days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(count)]
    chunks = day_chunks(days, parts)
    assert [d for c in chunks for d in c] == days  # every day once, in order
    assert len(chunks) == min(parts, count)
    assert max(map(len, chunks)) - min(map(len, chunks)) <= 1
