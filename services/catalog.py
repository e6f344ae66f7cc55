"""The catalog: plans, subscriptions and quota overrides (contract section 4).

Every change runs inside the caller's transaction and refreshes the affected tenant's
quota_usage rows in it, so a quota check never sees a catalog change without its quotas.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from models.api import (
    OverrideIn,
    OverrideOut,
    PlanIn,
    PlanOut,
    QuotaOut,
    SubscriptionIn,
    SubscriptionOut,
)
from services.quota import refresh_quota_usage
from tallyflow.core.clock import utc_today
from tallyflow.core.errors import Conflict, InvalidInput, NotFound
from tallyflow.core.sqlfiles import sql

EXCLUSION_VIOLATION = "23P01"
NUMERIC_OUT_OF_RANGE = "22003"


@contextmanager
def numbers_in_range() -> Iterator[None]:
    """A value too large for its NUMERIC column is the caller's error (422), not a 500.

    NOTE: the request schemas bound amounts too; this keeps the database's own limit from
    ever surfacing as a server error.
    """
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == NUMERIC_OUT_OF_RANGE:
            raise InvalidInput(
                "a number is too large for its field", code="number_out_of_range"
            ) from None
        raise


def create_plan(conn: sa.Connection, plan: PlanIn) -> PlanOut:
    """Create a plan and its quotas; Conflict when the code exists."""
    # NOTE (issue 13): quotas naming a billable metric take its aggregation (422 when they
    # name another one); matrix pricing only on a grouped one.
    from services.metrics.plans import check_plan_quotas

    aggregations = check_plan_quotas(conn, plan)
    with numbers_in_range():
        created = conn.execute(
            sql("catalog/insert_plan"),
            {
                "code": plan.code,
                "name": plan.name,
                "currency": plan.currency,
                "base_fee": plan.base_fee,
                "minimum_commitment": plan.minimum_commitment,
            },
        ).one_or_none()
    if created is None:
        raise Conflict(f"plan {plan.code!r} already exists", code="plan_exists")
    if plan.quotas:
        with numbers_in_range():
            conn.execute(
                sql("catalog/insert_plan_quota"),
                [
                    {
                        "plan_id": created.id,
                        "metric": q.metric,
                        "aggregation": aggregations[q.metric],
                        "included": q.included,
                        "limit": q.limit,
                        "enforcement": q.enforcement,
                        "pricing_model": q.pricing["model"],
                        "pricing": json.dumps(q.pricing),
                    }
                    for q in plan.quotas
                ],
            )
    # NOTE: a new plan has no subscribers yet, so no quota_usage row can change.
    return list_plans(conn, codes=[plan.code])[0]


def list_plans(conn: sa.Connection, *, codes: Sequence[str] | None = None) -> list[PlanOut]:
    """All plans (or the given codes) with their quotas, by code."""
    plans = conn.execute(
        sql("catalog/select_plans"), {"codes": None if codes is None else list(codes)}
    ).all()
    quotas: dict[int, list[QuotaOut]] = {}
    if plans:
        for q in conn.execute(
            sql("catalog/select_plan_quotas"), {"plan_ids": [p.id for p in plans]}
        ):
            quotas.setdefault(q.plan_id, []).append(
                QuotaOut(
                    metric=q.metric,
                    aggregation=q.aggregation,
                    included=q.included,
                    limit=q.limit,
                    enforcement=q.enforcement,
                    pricing=_pricing(q.pricing),
                )
            )
    return [
        PlanOut(
            id=p.id,
            code=p.code,
            name=p.name,
            currency=p.currency,
            base_fee=p.base_fee,
            minimum_commitment=p.minimum_commitment,
            quotas=quotas.get(p.id, []),
            created_at=p.created_at,
        )
        for p in plans
    ]


def _pricing(text: str) -> dict[str, Any]:
    # NOTE: parse_float=Decimal: a price stored as a JSON number never becomes a float.
    value: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return value


def create_subscription(
    conn: sa.Connection,
    tenant_id: str,
    request: SubscriptionIn,
    *,
    today: dt.date | None = None,
    lake_root: str | None = None,
) -> SubscriptionOut:
    """Subscribe a tenant; a start after the open subscription's start ends that one there
    (a plan change). NotFound for an unknown plan, Conflict for overlapping dates.

    `lake_root`: the tenant's billable metrics are recomputed from that lake for the changed
    windows in this transaction (issue 13); None only where no metric can have usage yet."""
    if not conn.execute(sql("catalog/select_plans"), {"codes": [request.plan_code]}).first():
        raise NotFound(f"plan {request.plan_code!r} does not exist", code="plan_not_found")
    check_not_in_closed_period(conn, tenant_id, request.starts_on)
    params = {
        "tenant_id": tenant_id,
        "plan_code": request.plan_code,
        "starts_on": request.starts_on,
        "ends_on": request.ends_on,
    }
    try:
        # NOTE: a savepoint, so that a refused window leaves the caller's transaction usable.
        with conn.begin_nested():
            conn.execute(sql("catalog/end_open_subscription"), params)
            created = conn.execute(sql("catalog/insert_subscription"), params).one()
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == EXCLUSION_VIOLATION:
            raise Conflict(
                f"subscription {request.starts_on}..{request.ends_on or 'open'} overlaps "
                f"an existing subscription of tenant {tenant_id!r}",
                code="subscription_overlap",
            ) from None
        raise
    _refresh_metrics(conn, lake_root, tenant_id, request.starts_on)
    refresh_quota_usage(conn, today=today or utc_today(), as_of=None, tenant_ids=[tenant_id])
    return next(s for s in list_subscriptions(conn, tenant_id) if s.id == created.id)


def end_subscription(
    conn: sa.Connection,
    tenant_id: str,
    ends_on: dt.date,
    *,
    today: dt.date | None = None,
    lake_root: str | None = None,
) -> bool:
    """End the tenant's open subscription on `ends_on` (exclusive; a cancellation). False when
    the tenant has no open subscription that started before that day."""
    params = {"tenant_id": tenant_id, "starts_on": ends_on}
    ended = conn.execute(sql("catalog/end_open_subscription"), params).first() is not None
    if ended:
        _refresh_metrics(conn, lake_root, tenant_id, ends_on)
    refresh_quota_usage(conn, today=today or utc_today(), as_of=None, tenant_ids=[tenant_id])
    return ended


def _refresh_metrics(
    conn: sa.Connection, lake_root: str | None, tenant_id: str, from_day: dt.date
) -> None:
    """The tenant's billable metric values over its new windows (before its quotas, which
    read their totals)."""
    if lake_root is None:
        return
    from services.metrics.store import refresh_tenant_metric_usage

    refresh_tenant_metric_usage(conn, lake_root, tenant_id, from_day)


def check_not_in_closed_period(conn: sa.Connection, tenant_id: str, starts_on: dt.date) -> None:
    """Conflict when a subscription starting `starts_on` would change a closed invoice's period.

    NOTE: a start before the end of a closed period (inside it, or earlier: the open
    subscription is ended at the new start) would bill that period differently from what
    was issued: a backdated downgrade. Corrections after close go through credit notes.
    """
    closed_end = conn.execute(
        sql("catalog/select_latest_closed_period_end"), {"tenant_id": tenant_id}
    ).scalar_one()
    if closed_end is not None and starts_on < closed_end:
        raise Conflict(
            f"tenant {tenant_id!r} has a closed invoice up to {closed_end}: a subscription "
            f"may not start on {starts_on} (inside or before a closed period)",
            code="period_closed",
        )


def list_subscriptions(conn: sa.Connection, tenant_id: str) -> list[SubscriptionOut]:
    rows = conn.execute(sql("catalog/select_subscriptions"), {"tenant_id": tenant_id}).mappings()
    return [SubscriptionOut.model_validate(dict(r)) for r in rows]


def replace_overrides(
    conn: sa.Connection,
    tenant_id: str,
    overrides: Sequence[OverrideIn],
    *,
    today: dt.date | None = None,
) -> list[OverrideOut]:
    """Replace the tenant's whole override set (delete, insert, refresh: one transaction,
    so a rerun with the same body gives the same set). Each override must name a metric
    that the plan of a subscription overlapping its window prices (InvalidInput otherwise):
    an override may change an allowance, never grant a metric the plan does not bill."""
    for o in overrides:
        priced = conn.execute(
            sql("catalog/select_override_metric_priced"),
            {
                "tenant_id": tenant_id,
                "metric": o.metric,
                "effective_from": o.effective_from,
                "effective_to": o.effective_to,
            },
        ).scalar_one()
        if not priced:
            raise InvalidInput(
                f"metric {o.metric!r} is not priced by a plan of tenant {tenant_id!r} "
                f"during the override's window",
                code="metric_not_in_plan",
            )
    conn.execute(sql("catalog/delete_quota_overrides"), {"tenant_id": tenant_id})
    if overrides:
        with numbers_in_range():
            conn.execute(
                sql("catalog/insert_quota_override"),
                [{"tenant_id": tenant_id, **o.model_dump()} for o in overrides],
            )
    refresh_quota_usage(conn, today=today or utc_today(), as_of=None, tenant_ids=[tenant_id])
    return list_overrides(conn, tenant_id)


def list_overrides(conn: sa.Connection, tenant_id: str) -> list[OverrideOut]:
    rows = conn.execute(sql("catalog/select_quota_overrides"), {"tenant_id": tenant_id}).mappings()
    return [OverrideOut.model_validate(dict(r)) for r in rows]
