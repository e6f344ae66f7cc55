"""The spend measure and spend caps (contract 5b).

Spend of a tenant in a period = the total of the invoice the run would write now, priced by
the same pure `compute_invoice`, WITHOUT its commitment true-up lines (a minimum commitment
is a floor on the bill, not consumption: counting it would fire every spend alert below
the minimum on the first day) and before prepaid credits (credits pay for spend, they do
not reduce it). In the plan's currency.

INTEGRATION (invoicing depth): `measure_spend` computes the period's invoice with today's
`compute_invoice`; at merge it becomes the preview (`services/invoicing/preview`) total
minus true-up and credit lines.

Recorded spend: every ingest and backfill run stores the current period's spend of the
tenants that watch it (a spend alert or a spend cap) in tenant_spend, in its commit. The
quota snapshot reads "spend >= cap" from there at reload, so a quota check stays one
in-memory lookup.
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

NOT_SPEND = frozenset({"commitment_true_up", "credit"})


@dataclass(frozen=True)
class Spend:
    tenant_id: str
    currency: str
    amount: Decimal


def measure_spend(
    conn: sa.Connection, period: BillingPeriod, tenant_ids: Sequence[str]
) -> dict[str, Spend]:
    """The period's spend of each tenant that has a subscription in it (see module doc).

    Tenants whose subscriptions mix currencies (no invoice can be written) are left out.
    """
    from services.invoicing import MixedCurrencies, compute_invoice
    from services.invoicing.catalog import period_billable_windows

    if not tenant_ids:
        return {}
    out: dict[str, Spend] = {}
    for tenant_id, windows in period_billable_windows(conn, period, tenant_ids).items():
        try:
            draft = compute_invoice(tenant_id, period, windows)
        except MixedCurrencies:
            continue
        amount = sum((li.amount for li in draft.lines if li.kind not in NOT_SPEND), Decimal(0))
        out[tenant_id] = Spend(tenant_id, draft.currency, amount.quantize(quantum(draft.currency)))
    return out


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
