"""Billing periods, subscription windows, base-fee proration and the included allowance.

Pure functions over dates and Decimals; services.invoicing wires them to the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from models.period import BillingPeriod
from models.pricing.base import PRICING_CONTEXT

QUANTITY_QUANTUM = Decimal("0.000001")  # quantities are NUMERIC(38, 6)


@dataclass(frozen=True)
class Window:
    """The days [start, end) of a subscription that fall inside a period."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def subscription_window(
    starts_on: dt.date, ends_on: dt.date | None, period: BillingPeriod
) -> Window | None:
    """The part of a subscription (ends_on exclusive, None = open) inside the period.

    NOTE: the Python twin of the SQL function `subscription_windows` (migration 0010), which
    every statement needing a window calls; tests/services/test_subscription_window_sql.py
    holds the two equal. Change both or neither.
    """
    start = max(starts_on, period.start)
    end = min(ends_on or period.end, period.end)
    return Window(start, end) if start < end else None


def prorate_base_fee(base_fee: Decimal, window: Window, period: BillingPeriod) -> Decimal:
    """base_fee x active days / days in period, at full precision (rounded later, per line).

    NOTE: /31 is not exact in decimal; 100 significant digits are far beyond any minor
    unit, so the one half-up rounding per invoice line is the one that matters.
    """
    if not 0 < window.days <= period.days:
        raise ValueError(f"a {window.days}-day window does not fit a {period.days}-day period")
    if window.days == period.days:
        return base_fee
    with localcontext(PRICING_CONTEXT):
        return base_fee * window.days / period.days


def effective_included(
    plan_included: Decimal,
    window: Window,
    override_days: Iterable[tuple[Decimal, int]] = (),
) -> Decimal:
    """The included allowance of one metric for one subscription window.

    Rule for overrides that cover only part of a window: the allowance is day-weighted.
    Each day of the window carries the allowance in force that day (the override's
    `included` on the days it is effective, the plan's on the others) and the window's
    allowance is the average over its days:

        included = (plan_included x uncovered days + sum(override x its days)) / window days

    so an override of 1000 (plan: 0) effective for 10 days of a 30-day window gives
    333.333333. A window the override covers fully takes its value exactly; a weighted
    value is rounded half-up to the 6 decimals of a quantity. The allowance is never
    prorated by the window's length itself: each subscription applies its full allowance
    (contract, section 4). `override_days`: (included, days of the window it is in force).
    """
    pairs = list(override_days)
    covered = sum(days for _, days in pairs)
    if covered > window.days or any(days < 0 for _, days in pairs):
        raise ValueError(f"override days {pairs} do not fit a {window.days}-day window")
    if covered == 0:
        return plan_included
    if covered == window.days and len({included for included, _ in pairs}) == 1:
        return pairs[0][0]
    with localcontext(PRICING_CONTEXT):
        weighted = plan_included * (window.days - covered)
        for included, days in pairs:
            weighted += included * days
        return (weighted / window.days).quantize(QUANTITY_QUANTUM, rounding=ROUND_HALF_UP)


def billable_quantity(quantity: Decimal, included: Decimal) -> Decimal:
    """max(0, usage - included): what the pricing model is applied to."""
    return max(PRICING_CONTEXT.subtract(quantity, included), Decimal(0))
