"""Task: deliver the due webhook messages."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from services.webhooks.delivery import DeliveryReport, deliver_due
from services.webhooks.endpoints import endpoint_secret_box
from tallyflow.core.clock import utc_now
from tallyflow.core.resources import Resources


@task(name="deliver_due_webhooks", cache_policy=NO_CACHE)
def deliver_due_webhooks(resources: Resources, limit: int) -> DeliveryReport:
    """Send every delivery due now and record each outcome.

    NOTE: no task retries: a failed attempt is recorded and rescheduled in the database
    (backoff with jitter, same webhook-id), and a crash leaves leases that expire.
    Endpoints without a working TALLYFLOW_SECRET_KEY stop the run before anything is
    claimed (SecretKeyError: a configuration error, nothing attempted).
    """
    settings = resources.settings
    with resources.engine.connect() as conn:
        box = endpoint_secret_box(conn, settings.secret_key_text)
    if box is None:  # no live endpoint: nothing can be due
        return DeliveryReport(0, 0, 0, 0)
    return deliver_due(
        resources.engine,
        now=utc_now(),
        allow_private=settings.webhook_allow_private,
        box=box,
        limit=limit,
    )
