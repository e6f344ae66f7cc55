"""The invoice run's one write: drafts of the period created or refreshed (and closed)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.period import BillingPeriod
from services.invoicing import (
    GenerationResult,
    NumberingRule,
    Parallelism,
    generate_invoices,
    invoice_run_transaction,
)
from tallyflow.core.clock import utc_now
from tallyflow.core.resources import Resources


@task(name="generate_period_invoices", cache_policy=NO_CACHE)
def generate_period_invoices(
    resources: Resources,
    period: BillingPeriod,
    tenant_ids: Sequence[str] | None,
    close: bool,
    run_id: uuid.UUID | None,
    now: dt.datetime | None = None,
) -> GenerationResult:
    """One transaction (one snapshot, the period locked): price, upsert drafts, corrections, close.

    NOTE: no retries: a failed run rolls back whole and the next run redoes it (idempotent).
    """
    with invoice_run_transaction(resources.engine, [period]) as conn:
        return generate_invoices(
            conn,
            period,
            tenant_ids=tenant_ids,
            close=close,
            run_id=run_id,
            now=now or utc_now(),
            numbering=NumberingRule.of(resources.settings),
            parallel=Parallelism.of(resources.settings),
        )
