"""Reports for the invoice run's artifact: what the run could not bill, or billed late."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from models.period import BillingPeriod
from tallyflow.core.sqlfiles import sql

# ---------------------------------------------------------------------------------------
# Reports for the run's artifact
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnsubscribedUsage:
    tenant_id: str
    metrics: int
    usage_days: int
    events: int


@dataclass(frozen=True)
class LateUsage:
    tenant_id: str
    invoice_id: int
    number: str
    period_start: dt.date
    metric: str
    usage_days: int
    quantity_sum: Decimal
    events: int
    last_updated_at: dt.datetime


def unsubscribed_usage(
    conn: sa.Connection, period: BillingPeriod, *, tenant_ids: Sequence[str] | None = None
) -> list[UnsubscribedUsage]:
    """Tenants with usage in the period and no subscription in it (billed to nobody)."""
    rows = conn.execute(
        sql("invoicing/select_unsubscribed_usage"),
        {
            "period_start": period.start,
            "period_end": period.end,
            "tenant_ids": list(tenant_ids) if tenant_ids is not None else None,
        },
    ).mappings()
    return [UnsubscribedUsage(**{**r, "events": int(r["events"])}) for r in rows]


def late_usage_in_closed_periods(
    conn: sa.Connection, *, tenant_ids: Sequence[str] | None = None, max_rows: int = 1000
) -> list[LateUsage]:
    """Usage (re)aggregated after its period's invoice closed: billed by a correction."""
    rows = conn.execute(
        sql("invoicing/select_late_usage_in_closed_periods"),
        {"tenant_ids": list(tenant_ids) if tenant_ids is not None else None, "max_rows": max_rows},
    ).mappings()
    return [LateUsage(**{**r, "events": int(r["events"])}) for r in rows]
