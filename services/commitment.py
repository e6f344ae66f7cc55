"""Minimum commitment (contract 5b): the `commitment_true_up` of one subscription window.

Rule: a plan's `minimum_commitment` is money per calendar month, prorated by days exactly
like the base fee (minimum x active days / days in period, full precision, then rounded
half-up to the currency's minor unit). When the window's base-fee and usage lines (already
rounded) total less than that, the invoice gets a `commitment_true_up` line for the
difference, so the window costs at least its prorated minimum.

Worked example: minimum 100.00 USD, window of 15 days in a 30-day month -> prorated
50.00; base fee 20.00 + usage 12.34 = 32.34 -> true-up 17.66. With usage 40.00 the window
already costs 60.00 >= 50.00 -> no line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from models.money import round_money
from models.period import BillingPeriod
from models.pricing.base import PRICING_CONTEXT
from services.proration import Window, prorate_base_fee


@dataclass(frozen=True)
class TrueUp:
    """The true-up of one window: its prorated minimum, what it was charged, the gap."""

    minimum_commitment: Decimal  # per calendar month, as on the plan
    prorated_exact: Decimal
    prorated: Decimal  # rounded to the minor unit
    charged: Decimal  # the window's base-fee + usage line total (rounded lines)
    amount: Decimal  # prorated - charged, > 0

    def breakdown(self, window: Window, period: BillingPeriod) -> dict[str, object]:
        return {
            "minimum_commitment": str(self.minimum_commitment),
            "active_days": window.days,
            "days_in_period": period.days,
            "prorated_minimum": str(self.prorated),
            "unrounded_prorated_minimum": str(self.prorated_exact),
            "charged": str(self.charged),
        }


def commitment_true_up(
    minimum_commitment: Decimal | None,
    window: Window,
    period: BillingPeriod,
    charged_lines: Iterable[Decimal],
    currency: str,
) -> TrueUp | None:
    """The window's true-up, or None (no minimum, or the window already costs enough)."""
    if minimum_commitment is None or minimum_commitment <= 0:
        return None
    exact = prorate_base_fee(minimum_commitment, window, period)
    prorated = round_money(exact, currency)
    charged = Decimal(0)
    for amount in charged_lines:
        charged = PRICING_CONTEXT.add(charged, amount)
    gap = PRICING_CONTEXT.subtract(prorated, charged)
    if gap <= 0:
        return None
    return TrueUp(minimum_commitment, exact, prorated, charged, gap)
