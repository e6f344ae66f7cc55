"""The invoice run's one write: drafts of the period created or refreshed (and closed)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from models.period import BillingPeriod
from prefect import task
from prefect.cache_policies import NONE

from services.invoicing import GenerationResult, generate_invoices
from tallyflow.core.resources import Resources


@task(name="generate_period_invoices", cache_policy=NONE)
def generate_period_invoices(
    resources: Resources,
    period: BillingPeriod,
    tenant_ids: Sequence[str] | None,
    close: bool,
    run_id: uuid.UUID | None,
) -> GenerationResult:
    """One transaction: lock the period, price every subscription, upsert drafts, close.

    NOTE: no retries: a failed run rolls back whole and the next run redoes it (idempotent).
    """
    with resources.engine.begin() as conn:
        return generate_invoices(conn, period, tenant_ids=tenant_ids, close=close, run_id=run_id)
