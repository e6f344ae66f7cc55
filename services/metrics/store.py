"""Write and read the precomputed metric values (table `metric_usage`).

`refresh_metric_usage` is the one call an ingest or backfill run makes inside its commit
transaction: for the periods whose days it touched, every billable metric is recomputed
from the lake files that count (the manifest, which in that transaction already lists the
run's new files) and its rows of those periods are replaced (delete the scope, insert:
one transaction, so a rerun gives the same rows and a reader never sees half a period).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from models.metrics import MetricDefinition
from models.period import BillingPeriod
from services.ingest import lake
from services.metrics.catalog import list_metrics
from services.metrics.compute import (
    MetricComputation,
    SubscriptionWindow,
    carries_level,
    compute_metric_usage,
)
from tallyflow.core.clock import utc_now
from tallyflow.core.db import driver_connection
from tallyflow.core.sqlfiles import sql

# NOTE: transaction-level advisory lock taken by every writer of metric_usage before it
# reads the subscription windows, so an ingest commit and a subscription change never
# interleave their delete + insert of one tenant's rows (the second waits for the first's
# commit, then reads its windows and lake files).
METRIC_USAGE_LOCK_KEY = 0x7446_0013


@dataclass
class MetricRefresh:
    """What a refresh did, for the run's summary: periods, rows, unreadable values."""

    periods: list[str] = field(default_factory=list)  # YYYY-MM
    rows_written: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)  # metric code -> events skipped

    def to_json(self) -> dict[str, Any]:
        return {
            "metric_periods": self.periods,
            "metric_rows_written": self.rows_written,
            "metric_unreadable": dict(sorted(self.unreadable.items())),
        }


def periods_to_refresh(
    days: Sequence[dt.date], metric: MetricDefinition, as_of: dt.date
) -> list[BillingPeriod]:
    """The periods of the touched days; for a metric that carries a level across periods
    (time_weighted_sum), also every later period up to the one containing `as_of`.

    NOTE: a late event for October changes the level carried into November and after, so
    those periods are recomputed too (closed invoices never change: section 5.2 reports it).
    """
    touched = sorted({BillingPeriod.of(d) for d in days}, key=lambda p: p.start)
    if not touched or not carries_level(metric):
        return touched
    periods = [touched[0]]
    last = max(touched[-1].start, as_of.replace(day=1))
    while periods[-1].end <= last:
        periods.append(BillingPeriod.of(periods[-1].end))
    return periods


def refresh_metric_usage(
    conn: sa.Connection,
    lake_root: str | Path,
    days: Sequence[dt.date],
    as_of: dt.datetime,
    *,
    tenant_ids: Sequence[str] | None = None,
    metric_codes: Sequence[str] | None = None,
) -> MetricRefresh:
    """Recompute the billable metrics' usage for the periods of `days` (all tenants or
    `tenant_ids`; all metrics or `metric_codes`) inside the caller's transaction."""
    out = MetricRefresh()
    metrics = list_metrics(conn, codes=metric_codes)
    if not metrics or not days:
        out.unreadable = {m.code: 0 for m in metrics}
        return out
    conn.execute(sql("metrics/lock_metric_usage"), {"key": METRIC_USAGE_LOCK_KEY})
    tenants = None if tenant_ids is None else sorted(set(tenant_ids))
    committed = lake.committed_lake_files(conn)
    files = list(
        zip(lake.absolute(lake_root, committed), [f.usage_date for f in committed], strict=True)
    )
    # NOTE: metrics that need the same periods are computed together (one read of the lake).
    by_periods: dict[tuple[BillingPeriod, ...], list[MetricDefinition]] = {}
    for metric in metrics:
        key = tuple(periods_to_refresh(days, metric, as_of.date()))
        by_periods.setdefault(key, []).append(metric)
    all_periods = sorted({p for key in by_periods for p in key}, key=lambda p: p.start)
    windows = subscription_windows(conn, all_periods, tenants)
    for periods, group in by_periods.items():
        computed = compute_metric_usage(files, group, periods, windows, tenants)
        out.rows_written += replace_metric_usage(conn, group, periods, computed, as_of, tenants)
        for code, count in computed.unreadable.items():
            out.unreadable[code] = out.unreadable.get(code, 0) + count
    out.periods = [p.start.strftime("%Y-%m") for p in all_periods]
    return out


def refresh_tenant_metric_usage(
    conn: sa.Connection,
    lake_root: str | Path,
    tenant_id: str,
    from_day: dt.date,
    *,
    as_of: dt.datetime | None = None,
) -> MetricRefresh:
    """After a subscription change of `tenant_id` effective `from_day`: recompute the
    tenant's billable metrics from the lake, in the caller's transaction, for every period
    from the one containing `from_day` to the one of the latest lake day (the periods whose
    subscription windows changed and may hold events). Nothing to do without lake events
    from then on (a later ingest computes the new windows itself).

    NOTE (issue 13): metric values are stored per subscription window, so without this a
    plan change mid-period would read 0 for the new windows until the next backfill.
    """
    latest = conn.execute(sql("metrics/select_latest_lake_day")).scalar_one()
    start = BillingPeriod.of(from_day)
    if latest is None or latest < start.start:
        return MetricRefresh()
    days = [start.start]
    while (following := BillingPeriod.of(days[-1]).end) <= latest:
        days.append(following)
    return refresh_metric_usage(conn, lake_root, days, as_of or utc_now(), tenant_ids=[tenant_id])


def subscription_windows(
    conn: sa.Connection, periods: Sequence[BillingPeriod], tenant_ids: Sequence[str] | None
) -> list[SubscriptionWindow]:
    """Every subscription's window in each period, ordered by tenant, period, start.

    NOTE: read from the SQL function `subscription_windows` (migration 0010), the one home
    of the rule with its twin services.proration.subscription_window; nothing is computed
    here.
    """
    if not periods:
        return []
    rows = conn.execute(
        sql("metrics/select_metric_subscription_windows"),
        {
            "period_starts": [p.start for p in periods],
            "period_ends": [p.end for p in periods],
            "tenant_ids": None if tenant_ids is None else list(tenant_ids),
        },
    ).all()
    return [
        SubscriptionWindow(r.tenant_id, r.period_start, r.window_start, r.window_end) for r in rows
    ]


def group_key(
    metric: MetricDefinition, group: tuple[str | None, ...] | None
) -> tuple[str, str | None]:
    """(group_key, group_values JSON) of a row: ('', None) for the total."""
    if group is None:
        return "", None
    text = json.dumps(dict(zip(metric.group_by, group, strict=True)), sort_keys=True)
    return text, text


def replace_metric_usage(
    conn: sa.Connection,
    metrics: Sequence[MetricDefinition],
    periods: Sequence[BillingPeriod],
    computed: MetricComputation,
    as_of: dt.datetime,
    tenant_ids: Sequence[str] | None,
) -> int:
    """Delete the scope's rows and COPY the computed ones (the caller's transaction)."""
    conn.execute(
        sql("metrics/delete_metric_usage"),
        {
            "codes": [m.code for m in metrics],
            "period_starts": [p.start for p in periods],
            "tenant_ids": None if tenant_ids is None else list(tenant_ids),
        },
    )
    if not computed.rows:
        return 0
    by_code = {m.code: m for m in metrics}
    columns = (
        "metric_code, tenant_id, period_start, window_start, window_end, group_key,"
        " group_values, value, as_of"
    )
    with (
        driver_connection(conn).cursor() as cur,
        cur.copy(f"COPY metric_usage ({columns}) FROM STDIN") as copy,
    ):
        for row in computed.rows:
            key, values = group_key(by_code[row.metric_code], row.group)
            copy.write_row(
                (
                    row.metric_code,
                    row.tenant_id,
                    row.period_start,
                    row.window_start,
                    row.window_end,
                    key,
                    values,
                    row.value,
                    as_of,
                )
            )
    return len(computed.rows)


@dataclass(frozen=True)
class MonthUsage:
    """A tenant's calendar-month value of a metric (GET …/metrics/{code}/usage)."""

    value: Decimal
    groups: list[tuple[dict[str, Any], Decimal]]
    as_of: dt.datetime | None


def month_usage(
    conn: sa.Connection, metric: MetricDefinition, tenant_id: str, period: BillingPeriod
) -> MonthUsage:
    rows = conn.execute(
        sql("metrics/select_metric_usage_month"),
        {
            "code": metric.code,
            "tenant_id": tenant_id,
            "period_start": period.start,
            "period_end": period.end,
        },
    ).all()
    total = Decimal(0)
    groups: list[tuple[dict[str, Any], Decimal]] = []
    as_of: dt.datetime | None = None
    for r in rows:
        as_of = r.as_of if as_of is None else max(as_of, r.as_of)
        if r.group_key == "":
            total = r.value
        else:
            groups.append((dict(r.group_values), r.value))
    return MonthUsage(total, groups, as_of)
