"""The finalize run's one write: refresh and close every draft of the periods past grace."""

from __future__ import annotations

import datetime as dt
import uuid

from prefect import task
from prefect.cache_policies import NO_CACHE

from services.invoicing import FinalizeResult, NumberingRule, Parallelism, finalize_invoices
from tallyflow.core.resources import Resources


@task(name="finalize_due_invoices", cache_policy=NO_CACHE)
def finalize_due_invoices(
    resources: Resources, as_of: dt.date, now: dt.datetime, run_id: uuid.UUID | None
) -> FinalizeResult:
    """One transaction over every due period (see services.invoicing.finalize).

    NOTE: no retries: a failed finalize rolls back whole (no number is used) and the next
    daily run redoes it.
    """
    return finalize_invoices(
        resources.engine,
        as_of=as_of,
        grace_days=resources.settings.invoice_grace_days,
        now=now,
        numbering=NumberingRule.of(resources.settings),
        run_id=run_id,
        parallel=Parallelism.of(resources.settings),
    )
