"""How a flow records its run: the job_runs row (services.job_runs.job_run) tagged with the
Prefect flow-run id, read here and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prefect.runtime import flow_run

from services.job_runs import JobRun, job_run
from tallyflow.core.resources import Resources


def current_flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in (None outside one)."""
    return flow_run.get_id()


@contextmanager
def flow_job_run(resources: Resources, job: str, parameters: Mapping[str, Any]) -> Iterator[JobRun]:
    """`services.job_runs.job_run` for the running flow (`job` is the flow's name)."""
    with job_run(resources.engine, job, parameters, flow_run_id=current_flow_run_id()) as run:
        yield run
