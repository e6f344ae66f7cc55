"""Pricing models (contract section 4): small pure units behind one registry.

Each model is a frozen dataclass with `compute(quantity) -> PricingResult(quantity,
amount, breakdown)` at full Decimal precision (rounding to the currency's minor unit
happens once, per invoice line, in `models.money`) and `to_json()`, its canonical form
for plan_quotas.pricing. `parse_pricing` is the strict parser the API uses for plans.
"""

from models.pricing.base import BreakdownItem, PricingModel, PricingResult, Tier
from models.pricing.graduated import Graduated
from models.pricing.matrix import Matrix
from models.pricing.package import Package
from models.pricing.per_unit import PerUnit
from models.pricing.registry import MODELS, parse_pricing, pricing_from_row
from models.pricing.volume import Volume

__all__ = [
    "MODELS",
    "BreakdownItem",
    "Graduated",
    "Matrix",
    "Package",
    "PerUnit",
    "PricingModel",
    "PricingResult",
    "Tier",
    "Volume",
    "parse_pricing",
    "pricing_from_row",
]
