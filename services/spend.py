"""The spend measure and spend caps (contract 5b).

Spend of a tenant in a period = its preview total (contract 5.1): the total of the invoice
the run would write now, by the very computation the preview uses
(`services.invoicing.upcoming_invoices`), so a spend alert or cap compares exactly the
number `invoices:preview` shows. In the plan's currency. That total holds the commitment
true-up (a plan's prorated minimum is what the period costs at least, so a spend alert or
cap below it is reached at the first run) and is before prepaid credits (would-apply credit
lines are shown beside the total, never in it: credits pay for spend, they do not reduce
it).

Recorded spend: every ingest and backfill run stores the current period's spend of the
tenants that watch it (a spend alert or a spend cap) in tenant_spend, in its commit. The
quota snapshot reads "spend >= cap" from there at reload (and the database check reads the
same row), so a quota check stays one in-memory lookup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from models.money import quantum
from models.period import BillingPeriod
from models.spend import SpendCapOut
from services.catalog import numbers_in_range
from services.quota import notify_quota_change
from tallyflow.core.sqlfiles import sql


@dataclass(frozen=True)
class Spend:
    tenant_id: str
    currency: str
    amount: Decimal


def measure_spend(
    conn: sa.Connection, period: BillingPeriod, tenant_ids: Sequence[str]
) -> dict[str, Spend]:
    """The period's spend (its preview total) of each tenant that has a subscription in it.

    Tenants whose invoice cannot be priced (subscriptions mixing currencies, amounts out of
    range: the preview answers 409) are left out.
    """
    from services.invoicing import DraftInvoice, upcoming_invoices

    if not tenant_ids:
        return {}
    return {
        tenant_id: Spend(tenant_id, draft.currency, draft.total.quantize(quantum(draft.currency)))
        for tenant_id, draft in upcoming_invoices(conn, period, tenant_ids).items()
        if isinstance(draft, DraftInvoice)
    }


def refresh_tenant_spend(
    conn: sa.Connection,
    period: BillingPeriod,
    *,
    tenant_ids: Sequence[str] | None,
    now: dt.datetime,
) -> dict[str, Spend]:
    """Measure and store the spend of the watched tenants (all, or among `tenant_ids`).

    Safe to rerun: one row per tenant, replaced. In the caller's transaction.
    """
    watched = [
        r.tenant_id
        for r in conn.execute(
            sql("spend/select_spend_watched_tenants"),
            {"tenant_ids": sorted(set(tenant_ids)) if tenant_ids is not None else None},
        )
    ]
    if not watched:
        return {}
    spends = measure_spend(conn, period, watched)
    conn.execute(sql("spend/delete_tenant_spend"), {"tenant_ids": watched})
    if spends:
        conn.execute(
            sql("spend/upsert_tenant_spend"),
            [
                {
                    "tenant_id": s.tenant_id,
                    "period_start": period.start,
                    "currency": s.currency,
                    "amount": s.amount,
                    "as_of": now,
                }
                for s in spends.values()
            ],
        )
    return spends


def set_spend_cap(
    conn: sa.Connection, tenant_id: str, amount: Decimal | None, *, now: dt.datetime
) -> SpendCapOut:
    """Set (or with None remove) the tenant's cap; API processes reload that tenant."""
    if amount is None:
        conn.execute(sql("spend/delete_spend_cap"), {"tenant_id": tenant_id})
    else:
        with numbers_in_range():
            conn.execute(
                sql("spend/upsert_spend_cap"),
                {"tenant_id": tenant_id, "amount": amount, "now": now},
            )
    notify_quota_change(conn, [tenant_id])
    return spend_cap(conn, tenant_id, today=now.date())


def _plain(value: Decimal) -> Decimal:
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


def spend_cap(conn: sa.Connection, tenant_id: str, *, today: dt.date) -> SpendCapOut:
    """The cap, the current period's spend as of the last run, and whether it is reached."""
    row = conn.execute(sql("spend/select_spend_cap"), {"tenant_id": tenant_id}).one()
    current = row.period_start == BillingPeriod.of(today).start
    currency = row.currency if current else None
    spend = row.spend.quantize(quantum(row.currency)) if current else None
    cap = row.cap
    if cap is not None:
        # at the currency's scale once a run told which currency; else without padding
        cap = cap.quantize(quantum(currency)) if currency is not None else _plain(cap)
    return SpendCapOut(
        tenant_id=tenant_id,
        amount=cap,
        spend=spend,
        currency=currency,
        as_of=row.as_of if current else None,
        reached=cap is not None and spend is not None and spend >= cap,
    )
