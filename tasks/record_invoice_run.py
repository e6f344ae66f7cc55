"""The job_runs row of an invoice run: started (committed at once), then succeeded or failed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from tallyflow.resources import Resources
from tallyflow.sqlfiles import sql

JOB = "close_billing_period"


@task(name="start_invoice_run", cache_policy=NONE, retries=2, retry_delay_seconds=2)
def start_invoice_run(
    resources: Resources, parameters: Mapping[str, Any], flow_run_id: str | None = None
) -> uuid.UUID:
    """Insert the running job_runs row in its own transaction; returns the run id."""
    run_id = uuid.uuid4()
    with resources.engine.begin() as conn:
        conn.execute(
            sql("insert_invoice_job_run"),
            {
                "run_id": run_id,
                "job": JOB,
                "started_at": dt.datetime.now(dt.UTC),
                "parameters": json.dumps(parameters, default=str),
                "flow_run_id": flow_run_id,
            },
        )
    return run_id


@task(name="finish_invoice_run", cache_policy=NONE, retries=2, retry_delay_seconds=2)
def finish_invoice_run(
    resources: Resources,
    run_id: uuid.UUID,
    summary: Mapping[str, Any],
    error: str | None = None,
) -> None:
    """Mark the run succeeded (with its summary) or failed (with the error)."""
    with resources.engine.begin() as conn:
        conn.execute(
            sql("finish_invoice_job_run"),
            {
                "run_id": run_id,
                "status": "failed" if error else "succeeded",
                "finished_at": dt.datetime.now(dt.UTC),
                "summary": json.dumps(summary, default=str),
                "error": error,
            },
        )
