"""`graduated`: each unit priced by the tier it falls in, plus each entered tier's flat fee."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from models.pricing.base import (
    ZERO,
    BreakdownItem,
    PricingResult,
    Tier,
    add,
    check_quantity,
    mul,
    parse_tiers,
    refuse_unknown_keys,
    sub,
)


@dataclass(frozen=True)
class Graduated:
    """{"model": "graduated", "tiers": [{"up_to": "1000", "unit_price": "0.01"}, ...]}

    NOTE: `up_to` is inclusive and quantities are decimals, so tier n holds the units in
    (previous up_to, up_to]: with up_to 1000, unit 1000 is still priced by tier 1 and
    1000.5 puts 0.5 units in tier 2. At a quantity of 0 the first tier's flat fee is
    charged (its price of entry, as Stripe and Lago do); per_unit/package cost 0 there.
    """

    model: ClassVar[str] = "graduated"
    tiers: tuple[Tier, ...]

    def compute(self, quantity: Decimal) -> PricingResult:
        check_quantity(quantity)
        items: list[BreakdownItem] = []
        total = ZERO
        lower = ZERO
        for number, tier in enumerate(self.tiers, start=1):
            upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = max(sub(upper, lower), ZERO)
            entered = units > 0 or number == 1
            if not entered:
                break
            amount = add(mul(units, tier.unit_price), tier.flat_fee)
            total = add(total, amount)
            items.append(
                BreakdownItem(
                    description=_tier_label(number, lower, tier.up_to),
                    units=units,
                    amount=amount,
                    unit_price=tier.unit_price,
                    flat_fee=tier.flat_fee,
                    tier=number,
                )
            )
            if tier.up_to is None or quantity <= tier.up_to:
                break
            lower = tier.up_to
        return PricingResult(quantity=quantity, amount=total, breakdown=tuple(items))

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "tiers": [tier.to_json() for tier in self.tiers]}

    @classmethod
    def parse(cls, data: Mapping[str, Any], field: str = "pricing") -> Graduated:
        refuse_unknown_keys(data, {"model", "tiers"}, field)
        return cls(tiers=parse_tiers(data, field))


def _tier_label(number: int, lower: Decimal, up_to: Decimal | None) -> str:
    if up_to is None:
        return f"tier {number}: above {lower!s}"
    return f"tier {number}: {lower!s} to {up_to!s}"
