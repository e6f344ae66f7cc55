"""The registry: model name -> pricing model class; unknown names are an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from models.pricing.base import PricingModel, require_mapping
from models.pricing.graduated import Graduated
from models.pricing.matrix import Matrix
from models.pricing.package import Package
from models.pricing.per_unit import PerUnit
from models.pricing.volume import Volume
from tallyflow.core.errors import InvalidInput


class _Parser(Protocol):
    def __call__(self, data: Mapping[str, Any], field: str = "pricing") -> PricingModel: ...


MODELS: dict[str, _Parser] = {
    PerUnit.model: PerUnit.parse,
    Graduated.model: Graduated.parse,
    Volume.model: Volume.parse,
    Package.model: Package.parse,
    Matrix.model: Matrix.parse,  # per group of a grouped billable metric (section 4a)
}


def parse_pricing(data: Mapping[str, Any], field: str = "pricing") -> PricingModel:
    """Validate a pricing object strictly and build its model.

    Raises InvalidInput naming the bad field, e.g. "pricing.tiers[1].up_to must be greater
    than the previous tier's up_to". Numbers may be decimal strings or JSON numbers (taken
    by their text, never as binary floats); unknown fields are refused.
    """
    data = require_mapping(data, field)
    name = data.get("model")
    if name is None:
        raise InvalidInput(f"{field}.model is required (one of {', '.join(MODELS)})")
    parser = MODELS.get(name) if isinstance(name, str) else None
    if parser is None:
        raise InvalidInput(
            f"{field}.model {name!r} is not a known pricing model (one of {', '.join(MODELS)})"
        )
    return parser(data, field)


def pricing_from_row(model: str, pricing: Mapping[str, Any]) -> PricingModel:
    """The model stored in plan_quotas (pricing_model + pricing JSONB); they must agree."""
    if pricing.get("model", model) != model:
        raise InvalidInput(
            f"plan_quotas.pricing.model {pricing.get('model')!r} disagrees with "
            f"pricing_model {model!r}"
        )
    return parse_pricing({**pricing, "model": model})
