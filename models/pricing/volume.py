"""`volume`: all units priced by the one tier the whole quantity falls in, plus its flat fee."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from models.pricing.base import (
    BreakdownItem,
    PricingResult,
    Tier,
    add,
    check_quantity,
    mul,
    parse_tiers,
    refuse_unknown_keys,
)


@dataclass(frozen=True)
class Volume:
    """{"model": "volume", "tiers": [...]}: the first tier with quantity <= up_to applies.

    NOTE: `up_to` is inclusive, so a quantity exactly at a bound stays in the lower tier.
    A quantity of 0 falls in the first tier and pays its flat fee.
    """

    model: ClassVar[str] = "volume"
    tiers: tuple[Tier, ...]

    def compute(self, quantity: Decimal) -> PricingResult:
        check_quantity(quantity)
        number, tier = next(
            (n, t)
            for n, t in enumerate(self.tiers, start=1)
            if t.up_to is None or quantity <= t.up_to
        )
        amount = add(mul(quantity, tier.unit_price), tier.flat_fee)
        item = BreakdownItem(
            description=f"tier {number}: all {quantity!s} units x {tier.unit_price!s}",
            units=quantity,
            amount=amount,
            unit_price=tier.unit_price,
            flat_fee=tier.flat_fee,
            tier=number,
        )
        return PricingResult(quantity=quantity, amount=amount, breakdown=(item,))

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "tiers": [tier.to_json() for tier in self.tiers]}

    @classmethod
    def parse(cls, data: Mapping[str, Any], field: str = "pricing") -> Volume:
        refuse_unknown_keys(data, {"model", "tiers"}, field)
        return cls(tiers=parse_tiers(data, field))
