"""`per_unit`: every billable unit at one price; 0 units cost 0."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from models.pricing.base import (
    BreakdownItem,
    PricingResult,
    check_quantity,
    mul,
    parse_decimal,
    refuse_unknown_keys,
    require_key,
)


@dataclass(frozen=True)
class PerUnit:
    """{"model": "per_unit", "unit_price": "0.002"}"""

    model: ClassVar[str] = "per_unit"
    unit_price: Decimal

    def compute(self, quantity: Decimal) -> PricingResult:
        check_quantity(quantity)
        amount = mul(quantity, self.unit_price)
        item = BreakdownItem(
            description=f"{quantity!s} units x {self.unit_price!s}",
            units=quantity,
            amount=amount,
            unit_price=self.unit_price,
        )
        return PricingResult(quantity=quantity, amount=amount, breakdown=(item,))

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "unit_price": str(self.unit_price)}

    @classmethod
    def parse(cls, data: Mapping[str, Any], field: str = "pricing") -> PerUnit:
        refuse_unknown_keys(data, {"model", "unit_price"}, field)
        unit_price = require_key(data, "unit_price", field)
        return cls(unit_price=parse_decimal(unit_price, f"{field}.unit_price"))
