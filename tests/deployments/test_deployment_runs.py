"""The usage-backfill deployment end to end on a real Prefect server (the session harness):
created from prefect.yaml, run with parameters the way the UI's "Custom run" does (a flow run
created from the deployment), executed by a Prefect runner as `tallyflow up` does, and
overlapping runs kept apart."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from tallyflow.core.settings import Settings
from tallyflow.runtime.deployments import abuild_deployment, load_specs

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def restore_sigterm_handler() -> Iterator[None]:
    """A Prefect runner installs its own SIGTERM handler; give pytest its own back."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


USAGE_DAILY = sa.text(
    "SELECT tenant_id, metric, usage_date, quantity_sum, event_count, quantity_max"
    " FROM usage_daily ORDER BY tenant_id, metric, usage_date"
)


def write_events(settings: Settings) -> None:
    """Two tenants, three days, one event crossing UTC midnight through its offset."""
    events = [
        ("e1", "acme", "api.calls", "10", "2026-11-01T10:00:00Z"),
        ("e2", "acme", "api.calls", "2.5", "2026-11-01T23:30:00-05:00"),  # Nov 2 UTC
        ("e3", "acme", "storage.gb", "7", "2026-11-02T08:00:00Z"),
        ("e4", "globex", "api.calls", "1", "2026-11-03T00:00:00Z"),
        ("e5", "globex", "api.calls", "4", "2026-11-03T12:00:00+01:00"),
    ]
    rows = [
        json.dumps(
            dict(
                zip(("event_id", "tenant_id", "metric", "quantity", "occurred_at"), e, strict=True)
            )
        )
        for e in events
    ]
    (settings.landing_path / "usage.jsonl").write_text("\n".join(rows) + "\n")


def usage_daily(engine: sa.Engine) -> list[Sequence[Any]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(USAGE_DAILY)]


async def create_deployment(
    name: str = "usage-backfill", **runner_options: Any
) -> tuple[Any, UUID]:
    """A runner serving one deployment built from prefect.yaml (as `tallyflow up` does)."""
    from prefect.runner import Runner

    (spec,) = [s for s in load_specs() if s.name == name]
    runner = Runner(name="test-runner", pause_on_shutdown=False, **runner_options)
    deployment_id = await runner.aadd_deployment(await abuild_deployment(spec))
    return runner, deployment_id


async def custom_run(deployment_id: UUID, parameters: dict[str, Any]) -> UUID:
    """What the UI's "Custom run" does: POST /deployments/{id}/create_flow_run, JSON params."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_run = await client.create_flow_run_from_deployment(
            deployment_id, parameters=parameters
        )
    return flow_run.id


async def read_run(flow_run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_run(flow_run_id)


def test_backfill_run_from_the_deployment_restores_usage_daily(
    settings: Settings, engine: sa.Engine, prefect_harness: None
) -> None:
    from flows.ingest_usage import ingest_usage

    write_events(settings)
    ingest_usage()
    expected = usage_daily(engine)
    assert len(expected) == 4
    # Damage the aggregates: a wrong day and a missing day; the lake still holds the truth.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE usage_daily SET quantity_sum = 999 WHERE tenant_id = 'acme'"))
        conn.execute(sa.text("DELETE FROM usage_daily WHERE tenant_id = 'globex'"))
    assert usage_daily(engine) != expected

    async def scenario() -> Any:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        runner, deployment_id = await create_deployment()
        # Dates arrive as JSON strings, the way the UI form sends them.
        run_id = await custom_run(
            deployment_id,
            {
                "start": "2026-11-01",
                "end": "2026-11-03",
                "tenant_ids": None,
                "regenerate_invoices": False,
            },
        )
        await asyncio.wait_for(runner.start(run_once=True), timeout=180)
        flow_run = await read_run(run_id)
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        return flow_run, artifacts

    flow_run, artifacts = asyncio.run(scenario())
    assert flow_run.state.is_completed(), flow_run.state
    assert flow_run.parameters["start"] == "2026-11-01"
    assert usage_daily(engine) == expected
    assert [a.key for a in artifacts] == ["usage-backfill-summary"]


def test_overlapping_backfill_runs_of_the_deployment_never_run_at_once(
    settings: Settings, engine: sa.Engine, prefect_harness: None
) -> None:
    """Deployment concurrency limit 1 (ENQUEUE): the second run waits for a slot."""
    from flows.ingest_usage import ingest_usage

    write_events(settings)
    ingest_usage()
    expected = usage_daily(engine)

    async def scenario() -> list[Any]:
        from prefect.client.orchestration import get_client

        runner, deployment_id = await create_deployment(limit=2, query_seconds=1)
        params = {"start": "2026-11-01", "end": "2026-11-03"}
        run_ids = [await custom_run(deployment_id, params) for _ in range(2)]
        serving = asyncio.create_task(runner.start())
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                runs = [await read_run(r) for r in run_ids]
                if all(r.state.is_final() for r in runs):
                    break
                await asyncio.sleep(1)
        finally:
            await runner.astop()
            serving.cancel()
            with pytest.raises((asyncio.CancelledError, Exception)):
                await serving
        async with get_client() as client:
            histories = [await client.read_flow_run_states(r) for r in run_ids]
        return [(r, [s.name for s in h]) for r, h in zip(runs, histories, strict=True)]

    results = asyncio.run(scenario())
    for flow_run, _ in results:
        assert flow_run.state.is_completed(), flow_run.state
    # One of them was held back by the limit, and their running windows do not overlap.
    assert any("AwaitingConcurrencySlot" in names for _, names in results), results
    (a, _), (b, _) = sorted(results, key=lambda x: x[0].start_time)
    assert a.end_time <= b.start_time
    assert usage_daily(engine) == expected


def test_an_intraday_tick_is_dropped_while_the_previous_one_runs(
    settings: Settings, engine: sa.Engine, prefect_harness: None
) -> None:
    """intraday-usage: CANCEL_NEW, the next tick picks up everything anyway."""
    write_events(settings)

    async def scenario() -> list[Any]:
        runner, deployment_id = await create_deployment("intraday-usage", limit=2)
        run_ids = [await custom_run(deployment_id, {}) for _ in range(2)]
        await asyncio.wait_for(runner.start(run_once=True), timeout=180)
        return [await read_run(r) for r in run_ids]

    states = sorted(r.state.type.value for r in asyncio.run(scenario()))
    assert states == ["CANCELLED", "COMPLETED"]
    assert len(usage_daily(engine)) == 4


def test_a_backfill_waits_for_a_running_ingest_or_backfill(
    settings: Settings, engine: sa.Engine, prefect_harness: None
) -> None:
    """Across deployments (and CLI runs) the Postgres advisory lock keeps usage writes apart."""
    from flows.backfill_usage import backfill_usage
    from flows.ingest_usage import ingest_usage
    from services.job_runs import usage_write_lock

    write_events(settings)
    ingest_usage()
    expected = usage_daily(engine)
    finished = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        import datetime as dt

        try:
            backfill_usage(start=dt.date(2026, 11, 1), end=dt.date(2026, 11, 3))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            finished.set()

    with usage_write_lock(engine):  # another run holds the lock
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        assert not finished.wait(timeout=5), "backfill ran while another run held the lock"
    assert finished.wait(timeout=120)
    assert not errors, errors
    assert usage_daily(engine) == expected
