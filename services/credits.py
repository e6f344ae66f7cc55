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

The same lines everywhere: `plan_credits` picks the uses and
`services.invoicing.compute.credit_lines` makes the lines, for the would-apply lines a
draft or preview shows (`would_apply_lines`, nothing locked or reserved) and for the lines
a close writes (`apply_credits_to_drafts`).

NOTE: why a grant is never applied twice nor overdrawn: `apply_credits_to_drafts` runs in
the closing transaction, on drafts the caller has locked, and locks every grant the close
may use FOR UPDATE in id order in one statement (two closes sharing grants queue in the
same order, no deadlock); the second close reads what the first left once it commits. The
uses are planned in memory from the locked rows (two drafts of one tenant in one close
share its grants' remaining), then written by one statement whose decrement refuses to go
below 0 (and the table checks 0 <= remaining <= amount); credit_applications is unique per
(grant, invoice). A crash anywhere rolls the lines, applications and decrements back
together with the close.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa

from models.money import quantum
from models.period import BillingPeriod
from models.spend import CreditBalanceOut, CreditGrantIn, CreditGrantOut, CreditsOut
from tallyflow.core.errors import Conflict, InvalidInput, NotFound
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import sql

if TYPE_CHECKING:
    from services.invoicing.compute import DraftLine, NumberedLine

ZERO = Decimal(0)
CREDITED_KINDS = frozenset({"invoice", "adjustment"})


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


@dataclass(frozen=True, slots=True)
class _Draft:
    """A draft being closed, as applying credits sees it (with its other lines' numbers)."""

    id: int
    tenant_id: str
    currency: str
    period: BillingPeriod
    total: Decimal
    line_no: int  # its highest line number
    plan_code: str  # its first line's plan

    @property
    def lines(self) -> tuple[_LineStub, ...]:
        return (_LineStub(self.line_no, self.plan_code),)


@dataclass(frozen=True, slots=True)
class _LineStub:
    line_no: int
    plan_code: str


def plan_run_credits(
    drafts: Sequence[_Draft], grants: Iterable[Grant], *, on: dt.date
) -> list[tuple[_Draft, tuple[CreditUse, ...]]]:
    """Pure: the credits of every draft of one close, in id order, each grant's remaining
    carried from one draft to the next (two drafts of one tenant share its grants)."""
    pool = {g.id: g for g in grants}
    out = []
    for draft in sorted(drafts, key=lambda d: d.id):
        uses = plan_credits(
            draft.total,
            [g for g in pool.values() if g.currency == draft.currency],
            currency=draft.currency,
            period_end=draft.period.end,
            on=on,
        )
        for use in uses:
            pool[use.grant_id] = replace(pool[use.grant_id], remaining=use.remaining_after)
        if uses:
            out.append((draft, uses))
    return out


def apply_credits_to_drafts(
    conn: sa.Connection, invoice_ids: Sequence[int], now: dt.datetime
) -> int:
    """Apply prepaid credits to drafts being closed, in the caller's (closing) transaction,
    with a fixed number of statements whatever the number of drafts; returns how many
    invoices got credit.

    The caller holds the drafts' row locks and closes them right after. Credit notes are
    never credited. Three statements: read the drafts whose tenant holds credit (none: done),
    lock every grant they may use FOR UPDATE in id order, then one statement writes every
    credit line and application and lowers every grant and total at once (see the module
    docstring for why nothing is applied twice nor overdrawn).
    """
    if not invoice_ids:
        return 0
    drafts = [
        _Draft(
            id=int(r.id),
            tenant_id=r.tenant_id,
            currency=r.currency,
            period=BillingPeriod.of(r.period_start),
            total=r.total,
            line_no=int(r.line_no),
            plan_code=r.plan_code,
        )
        for r in conn.execute(
            sql("credits/select_drafts_with_credits"), {"invoice_ids": list(invoice_ids)}
        )
    ]
    if not drafts:
        return 0
    on = now.date()
    pairs = sorted({(d.tenant_id, d.currency) for d in drafts})
    by_tenant: dict[str, list[sa.Row[tuple[object, ...]]]] = {}
    for r in conn.execute(
        sql("credits/lock_usable_credit_grants"),
        {"tenant_ids": [t for t, _ in pairs], "currencies": [c for _, c in pairs], "on": on},
    ):
        by_tenant.setdefault(r.tenant_id, []).append(r)
    planned: list[tuple[_Draft, tuple[CreditUse, ...]]] = []
    for tenant_id, grant_rows in by_tenant.items():
        planned.extend(
            plan_run_credits(
                [d for d in drafts if d.tenant_id == tenant_id], _grants(grant_rows), on=on
            )
        )
    if not planned:
        return 0
    _write_credit_uses(conn, planned, now)
    crash_point("credits.grant_applied")
    return len(planned)


def _write_credit_uses(
    conn: sa.Connection, planned: Sequence[tuple[_Draft, tuple[CreditUse, ...]]], now: dt.datetime
) -> None:
    """One statement for the whole close: the credit lines (`credit_lines`, the very lines a
    draft showed as would-apply), the applications, the grants' remaining, the totals."""
    from services.invoicing.compute import credit_lines

    columns: dict[str, list[object]] = {
        k: []
        for k in (
            "grant_ids",
            "invoice_ids",
            "amounts",
            "line_nos",
            "plan_codes",
            "descriptions",
            "window_starts",
            "window_ends",
            "breakdowns",
        )
    }
    for draft, uses in planned:
        lines = credit_lines(
            uses, currency=draft.currency, period=draft.period, lines=draft.lines, would_apply=False
        )
        for use, line in zip(uses, lines, strict=True):
            columns["grant_ids"].append(use.grant_id)
            columns["invoice_ids"].append(draft.id)
            columns["amounts"].append(use.amount)
            columns["line_nos"].append(line.line_no)
            columns["plan_codes"].append(line.plan_code)
            columns["descriptions"].append(line.description)
            columns["window_starts"].append(line.window_start)
            columns["window_ends"].append(line.window_end)
            columns["breakdowns"].append(json.dumps(line.breakdown))
    done = conn.execute(sql("credits/apply_credit_uses"), {**columns, "now": now}).one()
    uses_count = len(columns["grant_ids"])
    if (done.grants_taken, done.lines, done.invoices) != (
        done.grants_used,
        uses_count,
        len(planned),
    ):  # pragma: no cover - the grants and drafts are locked above
        raise Conflict("credits changed while they were being applied", code="credit_overdrawn")


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


class InvoiceWithLines(InvoiceLike, Protocol):
    @property
    def period_start(self) -> dt.date: ...
    @property
    def kind(self) -> str: ...


def would_apply_lines(
    conn: sa.Connection,
    invoice: InvoiceWithLines,
    lines: Sequence[NumberedLine],
    *,
    on: dt.date,
) -> tuple[DraftLine, ...]:
    """The credit lines a draft or preview shows (contract 5b): what closing on `on` would
    add, marked would-apply, by the same `credit_lines` a close writes. A credit note gets
    none (credits pay invoices and adjustments only)."""
    from services.invoicing.compute import credit_lines

    if invoice.kind not in CREDITED_KINDS:
        return ()
    return credit_lines(
        would_apply_credits(conn, invoice, on=on),
        currency=invoice.currency,
        period=BillingPeriod.of(invoice.period_start),
        lines=lines,
        would_apply=True,
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
