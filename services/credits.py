"""Prepaid credits (contract 5b): grants, and applying them when an invoice closes.

The rule (`plan_credits`, pure): an invoice of currency C for a period ending E, closed on
day D, may use the grants of its tenant with currency C, `effective_from` < E, not expired
on D (`expires_on` is exclusive: a grant expiring on D is gone) and something remaining.
They are used in order of priority (highest first), then `expires_on` (soonest first, a
grant that never expires last), then id (oldest first); each takes what it can of what is
still owed. The total never goes below 0. Each grant used gives one negative `credit` line.

Worked example: total 100.00; grants #1 (priority 0, 80 left, never expires), #2 (priority
5, 30 left, expires 2027-01-01), #3 (priority 5, 50 left, expires 2026-12-15). Order: #3,
#2, #1 -> #3 gives 50, #2 gives 30, #1 gives 20 (60 left on #1). Total 0.00.

NOTE: why a grant is never applied twice nor overdrawn: `apply_credits_at_close` runs in
the closing transaction, on a draft the caller has locked, and locks the usable grants
FOR UPDATE in id order (two closes sharing grants queue in the same order, no deadlock);
the second close reads what the first left once it commits. The decrement refuses to go
below 0 (and the table checks 0 <= remaining <= amount), and credit_applications is unique
per (grant, invoice). A crash anywhere rolls the lines, applications and decrements back
together with the close.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

import sqlalchemy as sa

from models.money import quantum
from models.spend import CreditBalanceOut, CreditGrantIn, CreditGrantOut, CreditsOut
from tallyflow.core.errors import Conflict, InvalidInput, NotFound
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import sql

ZERO = Decimal(0)


# --- the pure core ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant as the application rule sees it."""

    id: int
    currency: str
    remaining: Decimal
    effective_from: dt.date
    expires_on: dt.date | None
    priority: int


@dataclass(frozen=True, slots=True)
class CreditUse:
    """What one grant gives to one invoice."""

    grant_id: int
    amount: Decimal  # positive; the line shows it negated
    remaining_before: Decimal
    priority: int
    expires_on: dt.date | None

    @property
    def remaining_after(self) -> Decimal:
        return self.remaining_before - self.amount


def usable(grant: Grant, *, currency: str, period_end: dt.date, on: dt.date) -> bool:
    """May this grant pay an invoice of `currency` for a period ending `period_end`, on `on`?"""
    return (
        grant.currency == currency
        and grant.remaining > 0
        and grant.effective_from < period_end
        and (grant.expires_on is None or on < grant.expires_on)
    )


def application_order(grants: Iterable[Grant]) -> list[Grant]:
    """Priority desc, then expires_on asc (never-expiring last), then id asc."""
    return sorted(
        grants,
        key=lambda g: (-g.priority, g.expires_on is None, g.expires_on or dt.date.max, g.id),
    )


def plan_credits(
    total: Decimal,
    grants: Iterable[Grant],
    *,
    currency: str,
    period_end: dt.date,
    on: dt.date,
) -> tuple[CreditUse, ...]:
    """The credits an invoice of `total` gets from `grants` (see the module docstring).

    Amounts are whole minor units of the currency (a remaining amount finer than that
    gives only its whole units), so the total after credits is still a currency amount.
    """
    unit = quantum(currency)
    owed = total
    uses: list[CreditUse] = []
    for grant in application_order(
        g for g in grants if usable(g, currency=currency, period_end=period_end, on=on)
    ):
        if owed <= 0:
            break
        take = min(grant.remaining, owed).quantize(unit, rounding=ROUND_DOWN)
        if take <= 0:
            continue
        uses.append(CreditUse(grant.id, take, grant.remaining, grant.priority, grant.expires_on))
        owed -= take
    return tuple(uses)


def credit_line_description(use: CreditUse, currency: str) -> str:
    return f"Prepaid credit (grant #{use.grant_id}): {use.amount} {currency}"


# --- the closing transaction ------------------------------------------------------------


class InvoiceLike(Protocol):
    """What would-apply needs of an invoice (an InvoiceView or a preview)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def period_end(self) -> dt.date: ...
    @property
    def total(self) -> Decimal: ...


def _grants(rows: Iterable[sa.Row[tuple[object, ...]]]) -> list[Grant]:
    return [
        Grant(
            id=r.id,
            currency=r.currency,
            remaining=r.remaining,
            effective_from=r.effective_from,
            expires_on=r.expires_on,
            priority=r.priority,
        )
        for r in rows
    ]


def apply_credits_at_close(
    conn: sa.Connection, invoice_id: int, now: dt.datetime
) -> tuple[CreditUse, ...]:
    """Apply the tenant's grants to a draft being closed, in the caller's transaction.

    The caller holds the invoice's row lock and closes it right after (credit lines can
    only be written while it is a draft). Writes one negative `credit` line per grant used,
    lowers the invoice's total and each grant's `remaining`, records the applications.

    Callers pass invoices and adjustments only, never a credit note
    (`apply_credits_to_drafts` picks them).
    """
    invoice = conn.execute(
        sql("credits/select_invoice_for_credits"), {"invoice_id": invoice_id}
    ).one()
    if invoice.status != "draft":
        raise Conflict(f"invoice {invoice_id} is {invoice.status}", code="invoice_not_draft")
    if invoice.total <= 0:
        return ()
    on = now.date()
    params = {
        "tenant_id": invoice.tenant_id,
        "currency": invoice.currency,
        "period_end": invoice.period_end,
        "on": on,
    }
    locked = _grants(conn.execute(sql("credits/lock_usable_credit_grants"), params))
    uses = plan_credits(
        invoice.total, locked, currency=invoice.currency, period_end=invoice.period_end, on=on
    )
    for use in uses:
        left = conn.execute(
            sql("credits/decrement_credit_grant"), {"grant_id": use.grant_id, "amount": use.amount}
        ).first()
        if left is None:  # pragma: no cover - the lock makes this impossible
            raise Conflict(f"grant {use.grant_id} would be overdrawn", code="credit_overdrawn")
        conn.execute(
            sql("credits/insert_credit_application"),
            {"grant_id": use.grant_id, "invoice_id": invoice_id, "amount": use.amount, "now": now},
        )
        conn.execute(
            sql("credits/insert_credit_line"),
            {
                "invoice_id": invoice_id,
                "amount": use.amount,
                "description": credit_line_description(use, invoice.currency),
                "breakdown": json.dumps(_breakdown(use)),
            },
        )
        crash_point("credits.grant_applied")
    if uses:
        conn.execute(
            sql("credits/subtract_invoice_credits"),
            {"invoice_id": invoice_id, "credited": sum((u.amount for u in uses), ZERO)},
        )
    return uses


def _breakdown(use: CreditUse) -> dict[str, object]:
    return {
        "grant_id": use.grant_id,
        "priority": use.priority,
        "expires_on": use.expires_on.isoformat() if use.expires_on else None,
        "remaining_before": str(use.remaining_before),
        "remaining_after": str(use.remaining_after),
    }


def apply_credits_to_drafts(
    conn: sa.Connection, invoice_ids: Sequence[int], now: dt.datetime
) -> int:
    """Before drafts are closed (their rows locked by the caller): apply credits to the
    invoices and adjustments among them whose tenant holds a grant with credit left (one
    read picks them, so a bulk close pays nothing for tenants without credits). Returns the
    number of invoices credited."""
    ids = conn.execute(
        sql("credits/select_drafts_with_credits"), {"invoice_ids": list(invoice_ids)}
    ).scalars()
    return sum(1 for invoice_id in list(ids) if apply_credits_at_close(conn, int(invoice_id), now))


def would_apply_credits(
    conn: sa.Connection, invoice: InvoiceLike, *, on: dt.date
) -> tuple[CreditUse, ...]:
    """The credits a draft or preview would get if it closed on `on`: nothing is locked
    or reserved (another close may use the same grants first)."""
    if invoice.total <= 0:
        return ()
    rows = conn.execute(
        sql("credits/select_usable_credit_grants"),
        {
            "tenant_id": invoice.tenant_id,
            "currency": invoice.currency,
            "period_end": invoice.period_end,
            "on": on,
        },
    )
    return plan_credits(
        invoice.total,
        _grants(rows),
        currency=invoice.currency,
        period_end=invoice.period_end,
        on=on,
    )


# --- grants and balances ----------------------------------------------------------------


def create_grant(
    conn: sa.Connection, tenant_id: str, request: CreditGrantIn, *, now: dt.datetime
) -> CreditGrantOut:
    """A new grant; effective_from defaults to today (UTC)."""
    effective_from = request.effective_from or now.date()
    if request.expires_on is not None and request.expires_on <= effective_from:
        raise InvalidInput(
            f"expires_on {request.expires_on} must be after effective_from {effective_from}"
            " (it is exclusive)",
            code="invalid_dates",
        )
    from services.catalog import numbers_in_range

    with numbers_in_range():
        grant_id = conn.execute(
            sql("credits/insert_credit_grant"),
            {
                "tenant_id": tenant_id,
                "currency": request.currency,
                "amount": request.amount,
                "effective_from": effective_from,
                "expires_on": request.expires_on,
                "priority": request.priority,
                "note": request.note,
                "now": now,
            },
        ).scalar_one()
    return _grant_views(conn, tenant_id, grant_id=grant_id)[0]


def _grant_views(
    conn: sa.Connection, tenant_id: str, *, grant_id: int | None = None
) -> list[CreditGrantOut]:
    rows = conn.execute(
        sql("credits/select_credit_grants"), {"tenant_id": tenant_id, "grant_id": grant_id}
    ).mappings()
    out = []
    for r in rows:
        unit = quantum(r["currency"])
        out.append(
            CreditGrantOut.model_validate(
                {
                    **r,
                    "amount": r["amount"].quantize(unit),
                    "remaining": r["remaining"].quantize(unit),
                }
            )
        )
    if grant_id is not None and not out:
        raise NotFound(f"credit grant {grant_id} not found", code="credit_grant_not_found")
    return out


def tenant_credits(conn: sa.Connection, tenant_id: str, *, today: dt.date) -> CreditsOut:
    """Balances per currency (grants in effect and not expired today) and every grant."""
    balances = [
        CreditBalanceOut(currency=r.currency, available=r.available.quantize(quantum(r.currency)))
        for r in conn.execute(
            sql("credits/select_credit_balances"), {"tenant_id": tenant_id, "today": today}
        )
    ]
    return CreditsOut(tenant_id=tenant_id, balances=balances, grants=_grant_views(conn, tenant_id))
