"""What the invoice run cannot bill: usage without a subscription, late usage in closed periods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.period import BillingPeriod
from services.invoicing import (
    LateUsage,
    UnsubscribedUsage,
    late_usage_in_closed_periods,
    unsubscribed_usage,
)
from tallyflow.core.resources import Resources


@dataclass(frozen=True)
class BillingExceptions:
    unsubscribed: list[UnsubscribedUsage]
    late: list[LateUsage]


@task(name="collect_billing_exceptions", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def collect_billing_exceptions(
    resources: Resources, period: BillingPeriod, tenant_ids: Sequence[str] | None
) -> BillingExceptions:
    """Read both reports in one snapshot (REPEATABLE READ, read only)."""
    with resources.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return BillingExceptions(
                unsubscribed=unsubscribed_usage(conn, period, tenant_ids=tenant_ids),
                late=late_usage_in_closed_periods(conn, tenant_ids=tenant_ids),
            )
