"""`package`: each started package of `package_size` units is charged `package_price` in full."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from models.pricing.base import (
    PRICING_CONTEXT,
    BreakdownItem,
    PricingResult,
    check_quantity,
    mul,
    parse_decimal,
    refuse_unknown_keys,
    require_key,
)


@dataclass(frozen=True)
class Package:
    """{"model": "package", "package_size": "1000", "package_price": "5.00"}"""

    model: ClassVar[str] = "package"
    package_size: Decimal
    package_price: Decimal

    def compute(self, quantity: Decimal) -> PricingResult:
        check_quantity(quantity)
        # NOTE: exact ceiling division (no inexact quotient): full packages plus one for
        # any remainder. 0 units start no package and cost 0.
        whole, remainder = PRICING_CONTEXT.divmod(quantity, self.package_size)
        packages = int(whole) + (1 if remainder else 0)
        amount = mul(Decimal(packages), self.package_price)
        item = BreakdownItem(
            description=f"{packages} packages of {self.package_size!s} x {self.package_price!s}",
            units=quantity,
            amount=amount,
            unit_price=self.package_price,
            packages=packages,
        )
        return PricingResult(quantity=quantity, amount=amount, breakdown=(item,))

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "package_size": str(self.package_size),
            "package_price": str(self.package_price),
        }

    @classmethod
    def parse(cls, data: Mapping[str, Any], field: str = "pricing") -> Package:
        refuse_unknown_keys(data, {"model", "package_size", "package_price"}, field)
        size = parse_decimal(
            require_key(data, "package_size", field), f"{field}.package_size", minimum="positive"
        )
        price = parse_decimal(require_key(data, "package_price", field), f"{field}.package_price")
        return cls(package_size=size, package_price=price)
