"""Shared pieces of the pricing models: the result type, tiers and the decimal context."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any, ClassVar, NamedTuple, Protocol

from models.decimals import DecimalRefused, exact_decimal
from tallyflow.core.errors import InvalidInput

# NOTE: Python's default context keeps 28 significant digits and silently rounds beyond
# them; a 38-digit quantity times a price needs more. Pricing maths runs in this context
# (100 digits, inexact or overflowing operations trap) so amounts are exact until the one
# rounding to the currency's minor unit on the invoice line.
PRICING_CONTEXT = Context(
    prec=100, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Overflow, DivisionByZero]
)

ZERO = Decimal(0)

# NOTE: the models call the context's methods (PRICING_CONTEXT.multiply(a, b)) rather than
# entering `localcontext` per call: same arithmetic, an order of magnitude cheaper, which
# matters when an invoice run prices hundreds of thousands of lines.
mul = PRICING_CONTEXT.multiply
add = PRICING_CONTEXT.add
sub = PRICING_CONTEXT.subtract


class BreakdownItem(NamedTuple):
    """One part of an amount: a tier, the per-unit charge, or the packages.

    NOTE: a NamedTuple (immutable like the frozen dataclasses around it) because an
    invoice run builds close to a million of them and a tuple is three times cheaper.
    """

    description: str
    units: Decimal
    amount: Decimal
    unit_price: Decimal | None = None
    flat_fee: Decimal = ZERO
    tier: int | None = None  # 1-based tier number, for tiered models
    packages: int | None = None  # number of started packages, for `package`

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (decimals as strings) for invoice_lines.breakdown."""
        out: dict[str, Any] = {
            "description": self.description,
            "units": str(self.units),
            "amount": str(self.amount),
        }
        if self.unit_price is not None:
            out["unit_price"] = str(self.unit_price)
        if self.flat_fee:
            out["flat_fee"] = str(self.flat_fee)
        if self.tier is not None:
            out["tier"] = self.tier
        if self.packages is not None:
            out["packages"] = self.packages
        return out


@dataclass(frozen=True)
class PricingResult:
    """What a quantity costs under one model, at full precision (not yet rounded)."""

    quantity: Decimal
    amount: Decimal
    breakdown: tuple[BreakdownItem, ...]

    def breakdown_json(self) -> list[dict[str, Any]]:
        return [item.to_json() for item in self.breakdown]


class PricingModel(Protocol):
    """A pricing model: one `compute` entry point and a canonical JSON form."""

    model: ClassVar[str]

    def compute(self, quantity: Decimal) -> PricingResult: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Tier:
    """A price tier. `up_to` is inclusive; None means open-ended (only the last tier)."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO

    def to_json(self) -> dict[str, Any]:
        return {
            "up_to": None if self.up_to is None else str(self.up_to),
            "unit_price": str(self.unit_price),
            "flat_fee": str(self.flat_fee),
        }


def check_quantity(quantity: Decimal) -> Decimal:
    """Guard for compute(): quantities are finite, non-negative Decimals."""
    if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity < 0:
        raise ValueError(f"quantity must be a finite, non-negative Decimal, got {quantity!r}")
    return quantity


# ---------------------------------------------------------------------------------------
# Strict parsing helpers (used by each model's `parse`)
# ---------------------------------------------------------------------------------------


MAX_PRICE_NUMBER = Decimal("1e15")  # a price, fee, package size or tier bound


def parse_decimal(value: object, field: str, *, minimum: str = "non-negative") -> Decimal:
    """A decimal from a decimal string or a JSON number.

    NOTE: the parsing rule is `models.decimals.exact_decimal` (JSON numbers by their text;
    booleans, NaN and infinities refused), shared with the API's request models.
    """
    try:
        number = exact_decimal(value)
    except DecimalRefused as exc:
        if exc.kind == "type":
            raise InvalidInput(f"{field} must be a decimal string or number") from None
        if exc.kind == "infinite":
            raise InvalidInput(f"{field} must be finite") from None
        raise InvalidInput(f"{field} must be a decimal number, got {value!r}") from None
    if abs(number) > MAX_PRICE_NUMBER:
        # NOTE: a bound at plan creation (issue 11): no stored price can make one line
        # overflow by itself; a line that still would is refused before writing (check_fits).
        raise InvalidInput(f"{field} must be at most {MAX_PRICE_NUMBER:,.0f}")
    if minimum == "non-negative" and number < 0:
        raise InvalidInput(f"{field} must be >= 0")
    if minimum == "positive" and number <= 0:
        raise InvalidInput(f"{field} must be greater than 0")
    # NOTE: normalise -0 and keep the written scale otherwise ("5.00" stays "5.00").
    return number + ZERO if number == 0 else number


def require_mapping(data: object, field: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{field} must be an object")
    return data


def refuse_unknown_keys(data: Mapping[str, Any], allowed: set[str], field: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(f"{field}.{unknown[0]} is not a known field")


def require_key(data: Mapping[str, Any], key: str, field: str) -> Any:
    if key not in data:
        raise InvalidInput(f"{field}.{key} is required")
    return data[key]


def parse_tiers(data: Mapping[str, Any], field: str) -> tuple[Tier, ...]:
    """Tiers: a non-empty list, up_to strictly ascending, exactly one open-ended last tier."""
    raw = require_key(data, "tiers", field)
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"{field}.tiers must be a non-empty list")
    tiers: list[Tier] = []
    previous: Decimal | None = None
    last = len(raw) - 1
    for i, item in enumerate(raw):
        where = f"{field}.tiers[{i}]"
        tier = require_mapping(item, where)
        refuse_unknown_keys(tier, {"up_to", "unit_price", "flat_fee"}, where)
        if "up_to" not in tier:
            raise InvalidInput(f"{where}.up_to is required (null for the last tier)")
        raw_up_to = tier["up_to"]
        if raw_up_to is None:
            if i != last:
                raise InvalidInput(
                    f"{where}.up_to is null but only the last tier may be open-ended"
                )
            up_to = None
        else:
            if i == last:
                raise InvalidInput(f"{where}.up_to must be null: the last tier is open-ended")
            up_to = parse_decimal(raw_up_to, f"{where}.up_to", minimum="positive")
            if previous is not None and up_to <= previous:
                raise InvalidInput(f"{where}.up_to must be greater than the previous tier's up_to")
            previous = up_to
        unit_price = parse_decimal(require_key(tier, "unit_price", where), f"{where}.unit_price")
        flat_fee = parse_decimal(tier.get("flat_fee", "0"), f"{where}.flat_fee")
        tiers.append(Tier(up_to=up_to, unit_price=unit_price, flat_fee=flat_fee))
    return tuple(tiers)


__all__ = [
    "PRICING_CONTEXT",
    "ZERO",
    "BreakdownItem",
    "PricingModel",
    "PricingResult",
    "Tier",
    "add",
    "check_quantity",
    "localcontext",
    "mul",
    "parse_decimal",
    "parse_tiers",
    "refuse_unknown_keys",
    "require_key",
    "require_mapping",
    "sub",
]
