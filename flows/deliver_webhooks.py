"""Flow `deliver_webhooks`: send the webhook messages that are due (every minute)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.runs import flow_job_run
from tallyflow.core.resources import resources_from_env
from tasks.deliver_webhooks import deliver_due_webhooks


@flow(name="deliver_webhooks", log_prints=True)
def deliver_webhooks(limit: int = 500) -> dict[str, Any]:
    """Deliver up to `limit` due messages (signed, at least once); failures are retried by
    later runs with exponential backoff, so this flow itself never retries.

    NOTE: no artifact: a run every minute would bury the other flows' reports; its counts
    are the job_runs summary."""
    resources = resources_from_env()
    with flow_job_run(resources, "deliver_webhooks", {"limit": limit}) as run:
        report = deliver_due_webhooks(resources, limit).to_json()
        run.succeed(report)
    return report
