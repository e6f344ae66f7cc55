"""The job_runs row of an invoice run: started (committed at once), then succeeded or failed."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from services.job_runs import finish_job_run, start_job_run
from tallyflow.core.resources import Resources

JOB = "close_billing_period"


@task(name="start_invoice_run", cache_policy=NONE, retries=2, retry_delay_seconds=2)
def start_invoice_run(
    resources: Resources, parameters: Mapping[str, Any], flow_run_id: str | None = None
) -> uuid.UUID:
    """Insert the running job_runs row in its own transaction; returns the run id."""
    return start_job_run(resources.engine, JOB, dict(parameters), flow_run_id)


@task(name="finish_invoice_run", cache_policy=NONE, retries=2, retry_delay_seconds=2)
def finish_invoice_run(
    resources: Resources,
    run_id: uuid.UUID,
    summary: Mapping[str, Any],
    error: str | None = None,
) -> None:
    """Mark the run succeeded (with its summary) or failed (with the error)."""
    with resources.engine.begin() as conn:
        finish_job_run(
            conn, run_id, dict(summary), status="failed" if error else "succeeded", error=error
        )
