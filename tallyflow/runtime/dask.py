"""Fanning a run's pure work out to a Dask cluster through Prefect's Dask task runner.

With `TALLYFLOW_DASK_ADDRESS` set (`tcp://host:port` of a running scheduler), the flows
submit their per-file validation (ingest) and per-day computation (backfill) as Prefect
tasks through `prefect_dask.DaskTaskRunner(address=...)`; without it they run in process,
as before. The run's lock, its lake writes and its one Postgres transaction stay in the
flow's process either way.

NOTE: the runner is entered inside the flow body rather than given to `@flow(task_runner=)`:
the address is configuration read when the run starts (the same flow object serves the CLI,
`tallyflow up` and work-pool workers), and most of a run (dedupe, lake writes, the commit)
must not leave the flow's process.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect import Task
from prefect.task_runners import TaskRunner

R = TypeVar("R")


@contextmanager
def dask_task_runner(address: str | None) -> Iterator[TaskRunner[Any] | None]:
    """A started DaskTaskRunner connected to `address`, or None (run in process)."""
    if not address:
        yield None
        return
    from prefect_dask.task_runners import DaskTaskRunner

    with DaskTaskRunner(address=address) as runner:
        yield runner


def cluster_threads(runner: TaskRunner[Any]) -> int:
    """Worker threads of the cluster behind a DaskTaskRunner (at least 1)."""
    client = getattr(runner, "client", None)
    if client is None:
        return 1
    threads: dict[str, int] = client.nthreads()
    return max(1, sum(threads.values()))


def map_in_order(
    runner: TaskRunner[Any],
    task: Task[..., R],
    parameter_sets: Iterable[dict[str, Any]],
    *,
    window: int,
) -> Iterator[R]:
    """Submit one task run per parameter set, at most `window` in flight, and yield their
    results in submission order (so memory holds `window` results, not all of them)."""
    pending: deque[Any] = deque()
    for parameters in parameter_sets:
        pending.append(runner.submit(task, parameters))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
