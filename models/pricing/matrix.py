"""`matrix`: a grouped billable metric priced per group (contract section 4a).

{"model": "matrix",
 "prices": [{"match": {"model": "large"}, "included": "0", "pricing": {...}}, ...],
 "default": {"included": "0", "pricing": {...}}}

Each group of the metric is priced separately by the first entry (in list order) whose
`match` it satisfies, else by `default`: on max(0, its value - that entry's `included`),
with the entry's own pricing (per_unit, graduated, volume or package).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from models.pricing.base import (
    ZERO,
    PricingModel,
    PricingResult,
    parse_decimal,
    refuse_unknown_keys,
    require_key,
    require_mapping,
    sub,
)
from tallyflow.core.errors import InvalidInput

MAX_ENTRIES = 1000


@dataclass(frozen=True)
class MatrixEntry:
    """One price of the matrix: the group values it matches (None: the key is missing or
    not a string), its free allowance and its pricing."""

    match: tuple[tuple[str, str | None], ...]
    included: Decimal
    pricing: PricingModel

    def matches(self, group: Mapping[str, str | None]) -> bool:
        return all(group.get(key) == value for key, value in self.match)

    def to_json(self, *, with_match: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if with_match:
            out["match"] = dict(self.match)
        out["included"] = str(self.included)
        out["pricing"] = self.pricing.to_json()
        return out


@dataclass(frozen=True)
class GroupPrice:
    """How one group was priced: which entry (1-based; None = default), on what."""

    entry: int | None
    included: Decimal
    billable: Decimal
    result: PricingResult


@dataclass(frozen=True)
class Matrix:
    model: ClassVar[str] = "matrix"
    prices: tuple[MatrixEntry, ...]
    default: MatrixEntry

    def entry_for(self, group: Mapping[str, str | None]) -> tuple[int | None, MatrixEntry]:
        """The first entry that matches the group, in list order, else the default."""
        for number, entry in enumerate(self.prices, start=1):
            if entry.matches(group):
                return number, entry
        return None, self.default

    def price_group(self, group: Mapping[str, str | None], value: Decimal) -> GroupPrice:
        number, entry = self.entry_for(group)
        billable = max(sub(value, entry.included), ZERO)
        return GroupPrice(number, entry.included, billable, entry.pricing.compute(billable))

    def compute(self, quantity: Decimal) -> PricingResult:
        """A quantity without a group is priced by `default` (the invoice run prices each
        group with `price_group`; this keeps the PricingModel interface)."""
        billable = max(sub(quantity, self.default.included), ZERO)
        return self.default.pricing.compute(billable)

    def match_keys(self) -> set[str]:
        return {key for entry in self.prices for key, _ in entry.match}

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prices": [entry.to_json() for entry in self.prices],
            "default": self.default.to_json(with_match=False),
        }

    @classmethod
    def parse(cls, data: Mapping[str, Any], field: str = "pricing") -> Matrix:
        refuse_unknown_keys(data, {"model", "prices", "default"}, field)
        raw = require_key(data, "prices", field)
        if not isinstance(raw, list):
            raise InvalidInput(f"{field}.prices must be a list")
        if len(raw) > MAX_ENTRIES:
            raise InvalidInput(f"{field}.prices may hold at most {MAX_ENTRIES} entries")
        prices = tuple(
            _entry(item, f"{field}.prices[{i}]", with_match=True) for i, item in enumerate(raw)
        )
        default = _entry(require_key(data, "default", field), f"{field}.default", with_match=False)
        return cls(prices=prices, default=default)


def _entry(item: object, where: str, *, with_match: bool) -> MatrixEntry:
    from models.pricing.registry import parse_pricing

    entry = require_mapping(item, where)
    allowed = {"match", "included", "pricing"} if with_match else {"included", "pricing"}
    refuse_unknown_keys(entry, allowed, where)
    match: tuple[tuple[str, str | None], ...] = ()
    if with_match:
        raw_match = require_mapping(require_key(entry, "match", where), f"{where}.match")
        if not raw_match:
            raise InvalidInput(f"{where}.match must name at least one key")
        for key, value in raw_match.items():
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{where}.match.{key} must be a string or null")
            # NOTE: JSONB holds neither NUL nor lone surrogates: refused here (422, not 500)
            if not isinstance(key, str) or not _storable(key) or not _storable(value or ""):
                raise InvalidInput(f"{where}.match.{key} must be valid Unicode text without NUL")
        match = tuple(sorted(raw_match.items()))
    included = parse_decimal(entry.get("included", "0"), f"{where}.included")
    pricing_raw = require_mapping(require_key(entry, "pricing", where), f"{where}.pricing")
    if pricing_raw.get("model") == Matrix.model:
        raise InvalidInput(f"{where}.pricing.model must not be matrix")
    return MatrixEntry(
        match=match, included=included, pricing=parse_pricing(pricing_raw, f"{where}.pricing")
    )


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def check_matrix_keys(matrix: Matrix, group_by: Sequence[str], field: str) -> None:
    """Match keys must be among the metric's group_by (checked where the metric is known)."""
    for i, entry in enumerate(matrix.prices):
        for key, _ in entry.match:
            if key not in group_by:
                raise InvalidInput(
                    f"{field}.prices[{i}].match.{key} is not among the metric's group_by"
                    f" ({', '.join(group_by) or 'none'})"
                )
