"""Flow `deliver_webhooks`: send the webhook messages that are due (every minute)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tallyflow.core.resources import resources_from_env
from tasks.deliver_webhooks import deliver_due_webhooks


@flow(name="deliver_webhooks", log_prints=True)
def deliver_webhooks(limit: int = 500) -> dict[str, Any]:
    """Deliver up to `limit` due messages (signed, at least once); failures are retried by
    later runs with exponential backoff, so this flow itself never retries."""
    resources = resources_from_env()
    return deliver_due_webhooks(resources, limit).to_json()
