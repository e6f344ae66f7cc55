"""Quotas: the precomputed quota_usage table, the quota check, and its in-process snapshot.

How a check tells `no_subscription` from `not_entitled` (one indexed read)
-------------------------------------------------------------------------
quota_usage holds one row per (tenant, metric) that the tenant's subscription active on the
refresh day covers (its plan's quotas plus its overrides). A row's absence alone cannot say
whether the tenant has no subscription or just no such metric, so the read that answers a
check (`sql/select_quota_check.sql`) is one statement with two index probes: the active
subscription by `ix_subscriptions_tenant_starts` (tenant_id, starts_on) and the row by the
primary key of quota_usage. No subscription active today -> `no_subscription`; a subscription
but no row -> `not_entitled`. No aggregation happens at request time. No schema change was
needed for this (a per-tenant table would duplicate `subscriptions`).

The API does not even do that read per request: `QuotaSnapshot` keeps the same two facts in
memory (quota_usage rows, and the windows of current and future subscriptions), loaded at
startup and reloaded per tenant on `NOTIFY tallyflow_quota_usage`, which
`refresh_quota_usage` sends inside the caller's transaction (delivered on commit).

Used within a period: month-to-date usage inside the window of the subscription active
today (a plan change mid-month starts counting again for the new subscription, as each
subscription is billed on the usage of its own window).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from models.period import BillingPeriod
from tallyflow.core.sqlfiles import sql

NOTIFY_CHANNEL = "tallyflow_quota_usage"
# NOTE: a NOTIFY payload must stay under 8000 bytes; beyond this many tenants, listeners
# are told to reload everything instead of a list.
_MAX_NOTIFY_TENANTS = 100


def refresh_quota_usage(
    conn: sa.Connection,
    *,
    today: dt.date,
    as_of: dt.datetime | None,
    tenant_ids: Sequence[str] | None = None,
) -> int:
    """Recompute quota_usage (all tenants, or `tenant_ids`) for the month containing `today`.

    Runs inside the caller's transaction as one set-based statement (upsert the computed
    rows, delete the rows of the scope that are no longer covered), so rerunning it gives
    the same rows. `as_of` is when the usage behind `used` was aggregated; None (a catalog
    change) keeps each row's previous as_of. Sends NOTIFY so API processes reload their
    snapshot when the transaction commits. Returns the number of rows written or removed.
    """
    tenants = None if tenant_ids is None else sorted(set(tenant_ids))
    if tenants == []:
        return 0
    period_start, period_end = BillingPeriod.of(today).bounds
    upserted, removed = conn.execute(
        sql("quotas/refresh_quota_usage"),
        {
            "today": today,
            "period_start": period_start,
            "period_end": period_end,
            "as_of": as_of,
            "tenant_ids": tenants,
        },
    ).one()
    notify_quota_change(conn, tenants)
    return int(upserted) + int(removed)


def notify_quota_change(conn: sa.Connection, tenant_ids: Sequence[str] | None) -> None:
    """Queue a NOTIFY (sent at commit) naming the changed tenants (null = everything)."""
    if tenant_ids is not None and len(tenant_ids) > _MAX_NOTIFY_TENANTS:
        tenant_ids = None
    payload = json.dumps({"tenant_ids": None if tenant_ids is None else list(tenant_ids)})
    conn.execute(sql("quotas/notify_quota_usage"), {"payload": payload})


# --- rows and the pure check ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotaRow:
    """One quota_usage row."""

    tenant_id: str
    metric: str
    subscription_id: int
    plan_code: str
    period_start: dt.date
    period_end: dt.date
    aggregation: str
    included: Decimal
    limit: Decimal | None
    enforcement: str
    source: str
    used: Decimal
    as_of: dt.datetime | None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> QuotaRow:
        return cls(
            tenant_id=row["tenant_id"],
            metric=row["metric"],
            subscription_id=row["subscription_id"],
            plan_code=row["plan_code"],
            period_start=row["period_start"],
            period_end=row["period_end"],
            aggregation=row["aggregation"],
            included=row["included"],
            limit=row["limit"],
            enforcement=row["enforcement"],
            source=row["source"],
            used=row["used"],
            as_of=row["as_of"],
        )

    def for_day(self, today: dt.date) -> QuotaRow:
        """The row as seen on `today`: a row of an earlier month (no refresh yet this month)
        has nothing aggregated for the new period, so it counts 0 used."""
        if self.period_start <= today < self.period_end:
            return self
        start, end = BillingPeriod.of(today).bounds
        return QuotaRow(
            **{
                **{f: getattr(self, f) for f in self.__slots__},
                "period_start": start,
                "period_end": end,
                "used": Decimal(0),
                "as_of": None,
            }
        )

    @property
    def remaining(self) -> Decimal | None:
        return None if self.limit is None else max(self.limit - self.used, Decimal(0))


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    """The answer of a quota check (contract section 6)."""

    allowed: bool
    reason: str
    metric: str
    used: Decimal | None
    requested: Decimal
    limit: Decimal | None
    remaining: Decimal | None
    enforcement: str | None
    period_start: dt.date
    period_end: dt.date
    as_of: dt.datetime | None


def decide(
    *,
    metric: str,
    requested: Decimal,
    today: dt.date,
    has_subscription: bool,
    row: QuotaRow | None,
    spend_capped: bool = False,
) -> QuotaDecision:
    """The quota check rule: unlimited, or used + requested <= limit, or soft enforcement.

    A tenant at or above its spend cap (contract 5b) is refused whatever the metric
    (reason spend_cap_reached), after `no_subscription` and before `not_entitled`.
    """
    if not has_subscription or row is None or spend_capped:
        start, end = BillingPeriod.of(today).bounds
        if not has_subscription:
            reason = "no_subscription"
        elif spend_capped:
            reason = "spend_cap_reached"
        else:
            reason = "not_entitled"
        if row is not None and has_subscription:
            row = row.for_day(today)
            return QuotaDecision(
                allowed=False,
                reason=reason,
                metric=metric,
                used=row.used,
                requested=requested,
                limit=row.limit,
                remaining=row.remaining,
                enforcement=row.enforcement,
                period_start=row.period_start,
                period_end=row.period_end,
                as_of=row.as_of,
            )
        return QuotaDecision(
            allowed=False,
            reason=reason,
            metric=metric,
            used=None,
            requested=requested,
            limit=None,
            remaining=None,
            enforcement=None,
            period_start=start,
            period_end=end,
            as_of=None,
        )
    row = row.for_day(today)
    if row.limit is None:
        allowed, reason = True, "unlimited"
    elif row.used + requested <= row.limit:
        allowed, reason = True, "within_limit"
    elif row.enforcement == "soft":
        allowed, reason = True, "over_soft_limit"
    else:
        allowed, reason = False, "over_limit"
    return QuotaDecision(
        allowed=allowed,
        reason=reason,
        metric=metric,
        used=row.used,
        requested=requested,
        limit=row.limit,
        remaining=row.remaining,
        enforcement=row.enforcement,
        period_start=row.period_start,
        period_end=row.period_end,
        as_of=row.as_of,
    )


def check_quota(
    conn: sa.Connection, *, tenant_id: str, metric: str, requested: Decimal, today: dt.date
) -> QuotaDecision:
    """The check straight from the database: one statement (see the module docstring),
    answering exactly what the snapshot answers, the spend cap included."""
    found = (
        conn.execute(
            sql("quotas/select_quota_check"),
            {
                "tenant_id": tenant_id,
                "metric": metric,
                "today": today,
                "period_start": BillingPeriod.of(today).start,
            },
        )
        .mappings()
        .one()
    )
    row = QuotaRow.from_mapping(found) if found["metric"] is not None else None
    return decide(
        metric=metric,
        requested=requested,
        today=today,
        has_subscription=found["active_subscription_id"] is not None,
        row=row,
        spend_capped=found["spend_capped"],
    )


def tenant_quotas(conn: sa.Connection, *, tenant_id: str, today: dt.date) -> list[QuotaRow]:
    """The tenant's effective quotas (empty without a subscription active today)."""
    rows = conn.execute(
        sql("quotas/select_tenant_quotas"), {"tenant_id": tenant_id, "today": today}
    )
    return [QuotaRow.from_mapping(r).for_day(today) for r in rows.mappings()]


# --- the in-process snapshot ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TenantQuotas:
    """What the snapshot knows of one tenant: subscription windows and quota rows."""

    windows: tuple[tuple[dt.date, dt.date | None], ...]
    rows: Mapping[str, QuotaRow]
    # NOTE (contract 5b): the period's spend as of the last run is at or above the spend cap
    # (read at reload, so the check stays one dictionary lookup)
    spend_capped: bool = False

    def subscribed_on(self, day: dt.date) -> bool:
        return any(start <= day and (end is None or day < end) for start, end in self.windows)


_NOBODY = TenantQuotas(windows=(), rows={})


class QuotaSnapshot:
    """An in-process copy of quota_usage (plus subscription windows) for checks with no DB
    round trip. Reloads replace a tenant's entry in one assignment, so a reader sees either
    the old or the new state of a tenant, never a mix.

    NOTE: reloads may overlap (the NOTIFY listener's thread, and a request reloading the
    tenant it just changed). Each reload is stamped with the xmax of the database snapshot
    it read and the newest read of a tenant wins, so a slow full reload never puts back an
    older state of a tenant that a later per-tenant reload already brought in.
    """

    def __init__(self) -> None:
        self._tenants: dict[str, TenantQuotas] = {}
        self._stamps: dict[str, int] = {}  # tenant -> stamp of the read its entry came from
        self._full_stamp = -1  # stamp of the last applied full reload
        self._lock = threading.Lock()
        self.loaded = False

    def check(
        self, *, tenant_id: str, metric: str, requested: Decimal, today: dt.date
    ) -> QuotaDecision:
        entry = self._tenants.get(tenant_id, _NOBODY)
        return decide(
            metric=metric,
            requested=requested,
            today=today,
            has_subscription=entry.subscribed_on(today),
            row=entry.rows.get(metric),
            spend_capped=entry.spend_capped,
        )

    def __len__(self) -> int:
        return sum(len(t.rows) for t in self._tenants.values())

    def reload(
        self, conn: sa.Connection, *, today: dt.date, tenant_ids: Iterable[str] | None = None
    ) -> int:
        """Reload every tenant (None) or the given ones from the database; returns rows."""
        tenants = None if tenant_ids is None else sorted(set(tenant_ids))
        params = {"tenant_ids": tenants, "today": today}
        # NOTE: first statement, so under REPEATABLE READ it names the snapshot read below.
        stamp = int(conn.execute(sql("quotas/select_snapshot_xmax")).scalar_one())
        windows: dict[str, list[tuple[dt.date, dt.date | None]]] = {}
        for tenant_id, _id, starts_on, ends_on in conn.execute(
            sql("quotas/select_live_subscription_windows"), params
        ):
            windows.setdefault(tenant_id, []).append((starts_on, ends_on))
        rows: dict[str, dict[str, QuotaRow]] = {}
        count = 0
        for mapping in conn.execute(sql("quotas/select_quota_snapshot_rows"), params).mappings():
            row = QuotaRow.from_mapping(mapping)
            rows.setdefault(row.tenant_id, {})[row.metric] = row
            count += 1
        period_start = BillingPeriod.of(today).start
        capped = {
            tenant_id
            for (tenant_id,) in conn.execute(
                sql("quotas/select_spend_capped_tenants"),
                {**params, "period_start": period_start},
            )
        }
        fresh = {
            t: TenantQuotas(
                windows=tuple(windows.get(t, ())), rows=rows.get(t, {}), spend_capped=t in capped
            )
            for t in set(windows) | set(rows)
        }
        with self._lock:
            if tenants is None and self._full_stamp > stamp:
                pass  # a newer full reload is already applied
            elif tenants is None:
                newer = {t for t, s in self._stamps.items() if s > stamp}
                merged = {t: e for t, e in fresh.items() if t not in newer}
                merged.update({t: self._tenants[t] for t in newer if t in self._tenants})
                self._stamps = {t: self._stamps[t] for t in newer}
                self._full_stamp = max(self._full_stamp, stamp)
                self._tenants = merged
            else:
                for tenant_id in tenants:
                    if max(self._stamps.get(tenant_id, -1), self._full_stamp) > stamp:
                        continue  # a later read of this tenant is already applied
                    self._stamps[tenant_id] = stamp
                    entry = fresh.get(tenant_id)
                    if entry is None:
                        self._tenants.pop(tenant_id, None)
                    else:
                        self._tenants[tenant_id] = entry
            self.loaded = True
        return count
