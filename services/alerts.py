"""Alerts (contract 5b): thresholds on a metric or on the period's spend, fired once per
alert and period, as webhook events written in the run's own commit.

Measures (`alert_measure`, pure):
- `usage_absolute` {metric, threshold}: the metric's period-to-date total: quota_usage's
  `used` (the plan's aggregation over the current subscription's window) when the tenant's
  plan or overrides cover the metric, else the sum of usage_daily over the period.
- `usage_percent` {metric, threshold_percent}: used / effective limit x 100 (the limit after
  overrides, from quota_usage). No limit (unlimited, or 0) -> no percentage, never fires.
- `spend` {spend}: the period's spend (services/spend.py), in the plan's currency.
An alert fires when its measure is at or above its threshold.

NOTE: why once per alert and period: firing inserts (alert_id, period_start) into
alert_triggers ON CONFLICT DO NOTHING and only an inserted row emits the event, in the
same transaction as the ingest/backfill commit; two runs racing both try the insert and
the primary key lets one win. Re-PUTting an alert set keeps the alerts it repeats (and
their triggers); a changed threshold is a new alert, which may fire again this period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from models.money import quantum
from models.period import BillingPeriod
from models.pricing.base import PRICING_CONTEXT
from models.spend import AlertIn, AlertOut, AlertsOut
from services.spend import Spend, refresh_tenant_spend
from services.webhooks.outbox import EventType, emit
from tallyflow.core.sqlfiles import sql

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class AlertState:
    """An alert with the inputs of its measure."""

    id: int
    tenant_id: str
    kind: str  # usage_absolute | usage_percent | spend
    metric: str | None
    threshold: Decimal
    quota_used: Decimal | None = None
    quota_limit: Decimal | None = None
    usage_total: Decimal | None = None


def alert_measure(alert: AlertState, spend: Spend | None) -> Decimal | None:
    """The value compared with the threshold, or None when there is nothing to measure."""
    if alert.kind == "spend":
        return spend.amount if spend is not None else None
    if alert.kind == "usage_percent":
        if alert.quota_used is None or alert.quota_limit is None or alert.quota_limit <= 0:
            return None
        return PRICING_CONTEXT.divide(
            PRICING_CONTEXT.multiply(alert.quota_used, HUNDRED), alert.quota_limit
        )
    if alert.quota_used is not None:
        return alert.quota_used
    return alert.usage_total if alert.usage_total is not None else Decimal(0)


def reached(alert: AlertState, spend: Spend | None) -> Decimal | None:
    """The measure if the alert's threshold is reached, else None."""
    measure = alert_measure(alert, spend)
    return measure if measure is not None and measure >= alert.threshold else None


@dataclass(frozen=True)
class Fired:
    alert_id: int
    tenant_id: str
    event_type: str
    measure: Decimal
    event_id: str | None


def evaluate_alerts(
    conn: sa.Connection,
    *,
    tenant_ids: Sequence[str] | None,
    period: BillingPeriod,
    now: dt.datetime,
) -> list[Fired]:
    """After an ingest or backfill run, in its commit: record the watched tenants' spend,
    then fire every alert (all tenants, or `tenant_ids`) whose threshold is reached for the
    first time in `period` (the current one). Returns what fired.

    Call it after `refresh_quota_usage` (the usage measures read quota_usage).
    """
    spends = refresh_tenant_spend(conn, period, tenant_ids=tenant_ids, now=now)
    rows = conn.execute(
        sql("alerts/select_untriggered_alert_measures"),
        {
            "period_start": period.start,
            "period_end": period.end,
            "tenant_ids": sorted(set(tenant_ids)) if tenant_ids is not None else None,
        },
    ).mappings()
    fired: list[Fired] = []
    for row in [AlertState(**dict(r)) for r in rows]:
        spend = spends.get(row.tenant_id)
        measure = reached(row, spend)
        if measure is None:
            continue
        inserted = conn.execute(
            sql("alerts/insert_alert_trigger"),
            {"alert_id": row.id, "period_start": period.start, "now": now, "measure": measure},
        ).first()
        if inserted is None:
            continue  # fired already (a concurrent run)
        event_type: EventType = (
            "spend.threshold_reached" if row.kind == "spend" else "usage.threshold_reached"
        )
        event_id = emit(
            conn,
            event_type,
            tenant_id=row.tenant_id,
            data=_event_data(row, measure, spend, period),
            now=now,
        )
        fired.append(Fired(row.id, row.tenant_id, event_type, measure, event_id))
    return fired


def _event_data(
    alert: AlertState, measure: Decimal, spend: Spend | None, period: BillingPeriod
) -> Mapping[str, object]:
    data: dict[str, object] = {
        "alert_id": alert.id,
        "tenant_id": alert.tenant_id,
        "period": period.label,
        "period_start": period.start,
        "period_end": period.end,
    }
    if alert.kind == "spend":
        assert spend is not None
        data |= {
            "threshold": alert.threshold.quantize(quantum(spend.currency)),
            "spend": spend.amount,
            "currency": spend.currency,
        }
    elif alert.kind == "usage_percent":
        data |= {
            "metric": alert.metric,
            "threshold_percent": _plain(alert.threshold),
            "percent": measure.quantize(Decimal("0.01")),
            "used": _plain(alert.quota_used),
            "limit": _plain(alert.quota_limit),
        }
    else:
        data |= {
            "metric": alert.metric,
            "threshold": _plain(alert.threshold),
            "used": _plain(measure),
        }
    return data


def _plain(value: Decimal | None) -> Decimal | None:
    """A quantity without storage padding: 500.000000 -> 500, 2.500000 -> 2.5."""
    if value is None:
        return None
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


def replace_alerts(
    conn: sa.Connection, tenant_id: str, alerts: Sequence[AlertIn], *, now: dt.datetime
) -> AlertsOut:
    """Replace the tenant's alert set (alerts repeated keep their id and triggers)."""
    arrays = {
        "kinds": [a.kind for a in alerts],
        "metrics": [a.metric for a in alerts],
        "thresholds": [a.value for a in alerts],
    }
    conn.execute(sql("alerts/delete_alerts_not_in_set"), {"tenant_id": tenant_id, **arrays})
    if alerts:
        from services.catalog import numbers_in_range

        with numbers_in_range():
            conn.execute(
                sql("alerts/insert_alerts"), {"tenant_id": tenant_id, "now": now, **arrays}
            )
    return list_alerts(conn, tenant_id, period=BillingPeriod.of(now.date()))


def list_alerts(conn: sa.Connection, tenant_id: str, *, period: BillingPeriod) -> AlertsOut:
    """The tenant's alerts with `triggered_at` for `period` (null: not fired in it)."""
    out = []
    for r in conn.execute(
        sql("alerts/select_tenant_alerts"), {"tenant_id": tenant_id, "period_start": period.start}
    ):
        out.append(
            AlertOut(
                id=r.id,
                metric=r.metric,
                threshold_percent=r.threshold if r.kind == "usage_percent" else None,
                threshold=r.threshold if r.kind == "usage_absolute" else None,
                spend=r.threshold if r.kind == "spend" else None,
                triggered_at=r.triggered_at,
            )
        )
    return AlertsOut(
        tenant_id=tenant_id, period_start=period.start, period_end=period.end, alerts=out
    )
