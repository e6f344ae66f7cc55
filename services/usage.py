"""Usage summary: a tenant's usage_daily rows for a date range, per metric with its days."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

# FIXME(relayout): period_of from services.quota is gone
from tallyflow.core.clock import utc_today

from models.api import UsageDayOut, UsageMetricOut, UsageSummaryOut
from tallyflow.core.errors import InvalidInput
from tallyflow.core.sqlfiles import sql

MAX_RANGE_DAYS = 366


def usage_summary(
    conn: sa.Connection,
    tenant_id: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    today: dt.date | None = None,
) -> UsageSummaryOut:
    """Usage of [start, end) (end exclusive; default: the current period; a missing bound
    defaults to the edge of the other bound's month).

    `as_of` is the latest aggregation time among the rows read (null when there are none).
    """
    for bound in (start, end):
        # NOTE: the edges of the calendar have no neighbouring month to default to.
        if bound is not None and not dt.date(1, 2, 1) <= bound <= dt.date(9999, 11, 30):
            raise InvalidInput(f"date {bound} is out of range", code="invalid_range")
    if start is None and end is None:
        start, end = period_of(today or utc_today())
    elif end is None:
        assert start is not None
        end = period_of(start)[1]
    elif start is None:
        start = period_of(end - dt.timedelta(days=1))[0]
    if end <= start:
        raise InvalidInput(f"end {end} must be after start {start} (end is exclusive)")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidInput(f"the range may span at most {MAX_RANGE_DAYS} days")
    rows = conn.execute(
        sql("usage/select_usage_daily_range"), {"tenant_id": tenant_id, "start": start, "end": end}
    ).all()
    metrics: list[UsageMetricOut] = []
    as_of: dt.datetime | None = None
    for row in rows:
        if not metrics or metrics[-1].metric != row.metric:
            metrics.append(
                UsageMetricOut(
                    metric=row.metric,
                    quantity_sum=Decimal(0),
                    event_count=0,
                    quantity_max=Decimal(0),
                    days=[],
                )
            )
        current = metrics[-1]
        current.days.append(
            UsageDayOut(
                date=row.usage_date,
                quantity_sum=row.quantity_sum,
                event_count=row.event_count,
                quantity_max=row.quantity_max,
            )
        )
        current.quantity_sum += row.quantity_sum
        current.event_count += row.event_count
        current.quantity_max = max(current.quantity_max, row.quantity_max)
        as_of = row.updated_at if as_of is None else max(as_of, row.updated_at)
    return UsageSummaryOut(tenant_id=tenant_id, start=start, end=end, as_of=as_of, metrics=metrics)
