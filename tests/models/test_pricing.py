"""Pricing models: hand-computed cases per model (one comment each) and properties."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.pricing import (
    MODELS,
    Graduated,
    Package,
    PerUnit,
    Tier,
    Volume,
    parse_pricing,
    pricing_from_row,
)
from tallyflow.core.errors import InvalidInput

GRADUATED = {
    "model": "graduated",
    "tiers": [
        {"up_to": "1000", "unit_price": "0.01", "flat_fee": "2"},
        {"up_to": "5000", "unit_price": "0.005", "flat_fee": "1"},
        {"up_to": None, "unit_price": "0.001"},
    ],
}
VOLUME = {**GRADUATED, "model": "volume"}
PACKAGE = {"model": "package", "package_size": "1000", "package_price": "5.00"}
PER_UNIT = {"model": "per_unit", "unit_price": "0.002"}


@pytest.mark.parametrize(
    ("pricing", "quantity", "expected"),
    [
        # per_unit: nothing used costs nothing
        (PER_UNIT, "0", "0"),
        # per_unit: a plain product at full precision (no rounding here)
        (PER_UNIT, "1234.5", "2.4690"),
        # per_unit: fractional units at 6 decimals keep every digit
        (PER_UNIT, "0.000001", "0.000000002"),
        # graduated: 0 units still pay the first tier's flat fee (price of entry)
        (GRADUATED, "0", "2"),
        # graduated: inside tier 1: 500 x 0.01 + 2
        (GRADUATED, "500", "7"),
        # graduated: exactly at up_to 1000 stays in tier 1 (inclusive): 10 + 2
        (GRADUATED, "1000", "12"),
        # graduated: one unit above enters tier 2: 12 + 1 x 0.005 + 1
        (GRADUATED, "1001", "13.005"),
        # graduated: half a unit above: 12 + 0.5 x 0.005 + 1
        (GRADUATED, "1000.5", "13.0025"),
        # graduated: exactly at 5000: 12 + 4000 x 0.005 + 1 = 33
        (GRADUATED, "5000", "33"),
        # graduated: into the open tier: 33 + 5000 x 0.001 = 38 (open tier has no flat fee)
        (GRADUATED, "10000", "38"),
        # volume: 0 falls in tier 1 and pays its flat fee
        (VOLUME, "0", "2"),
        # volume: exactly at 1000 -> tier 1 for all units: 1000 x 0.01 + 2
        (VOLUME, "1000", "12"),
        # volume: 1001 -> all units at tier 2: 1001 x 0.005 + 1
        (VOLUME, "1001", "6.005"),
        # volume: exactly at 5000 -> tier 2: 25 + 1
        (VOLUME, "5000", "26"),
        # volume: 10000 -> open tier for everything: 10
        (VOLUME, "10000", "10"),
        # package: nothing used starts no package
        (PACKAGE, "0", "0"),
        # package: one unit starts a package, charged in full
        (PACKAGE, "1", "5.00"),
        # package: exactly one full package
        (PACKAGE, "1000", "5.00"),
        # package: one unit over starts the second package
        (PACKAGE, "1001", "10.00"),
        # package: a fraction of a unit over also starts a package
        (PACKAGE, "2000.000001", "15.00"),
    ],
)
def test_compute(pricing: dict[str, Any], quantity: str, expected: str) -> None:
    result = parse_pricing(pricing).compute(D(quantity))
    assert result.amount == D(expected)
    assert result.quantity == D(quantity)
    assert sum((item.amount for item in result.breakdown), D(0)) == result.amount


def test_graduated_breakdown_lists_each_tier() -> None:
    result = parse_pricing(GRADUATED).compute(D("6000"))
    assert [(i.tier, i.units, i.amount) for i in result.breakdown] == [
        (1, D("1000"), D("12")),
        (2, D("4000"), D("21")),
        (3, D("1000"), D("1")),
    ]
    assert result.breakdown_json()[0]["flat_fee"] == "2"


def test_package_breakdown_counts_packages() -> None:
    (item,) = parse_pricing(PACKAGE).compute(D("2500")).breakdown
    assert item.packages == 3
    assert item.to_json()["packages"] == 3


def test_full_precision_beyond_28_digits() -> None:
    # A 38-digit quantity times a price needs more than Python's default 28 digits.
    quantity = D("12345678901234567890123456789012.123456")
    assert PerUnit(unit_price=D("0.000001")).compute(quantity).amount == D(
        "12345678901234567890123456.789012123456"
    )


def test_to_json_round_trips() -> None:
    for data in (GRADUATED, VOLUME, PACKAGE, PER_UNIT):
        model = parse_pricing(data)
        assert parse_pricing(model.to_json()) == model
        assert model.to_json()["model"] == data["model"]


def test_registry_knows_the_five_models() -> None:
    # matrix (issue 13) prices a grouped billable metric per group
    assert set(MODELS) == {"per_unit", "graduated", "volume", "package", "matrix"}


def test_pricing_from_row_requires_agreement() -> None:
    assert pricing_from_row("per_unit", {"unit_price": "1"}) == PerUnit(unit_price=D(1))
    with pytest.raises(InvalidInput):
        pricing_from_row("volume", PER_UNIT)


def test_json_numbers_are_taken_by_their_text() -> None:
    model = parse_pricing({"model": "per_unit", "unit_price": 0.1})
    assert model == PerUnit(unit_price=D("0.1"))
    assert parse_pricing({"model": "package", "package_size": 10, "package_price": 3}) == (
        Package(package_size=D(10), package_price=D(3))
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # no model at all
        ({"unit_price": "1"}, "pricing.model is required"),
        # unknown model: no silent fallback
        ({"model": "flat"}, "pricing.model 'flat' is not a known pricing model"),
        # not an object
        ([], "pricing must be an object"),
        # unknown field
        ({"model": "per_unit", "unit_price": "1", "foo": 1}, "pricing.foo is not a known field"),
        # missing price
        ({"model": "per_unit"}, "pricing.unit_price is required"),
        # negative price
        ({"model": "per_unit", "unit_price": "-1"}, "pricing.unit_price must be >= 0"),
        # not a number
        ({"model": "per_unit", "unit_price": "abc"}, "pricing.unit_price must be a decimal"),
        # NaN and infinities
        ({"model": "per_unit", "unit_price": "NaN"}, "pricing.unit_price must be finite"),
        ({"model": "per_unit", "unit_price": "Infinity"}, "pricing.unit_price must be finite"),
        # booleans are not numbers
        ({"model": "per_unit", "unit_price": True}, "pricing.unit_price must be a decimal"),
        # package_size must be > 0
        (
            {"model": "package", "package_size": "0", "package_price": "1"},
            "pricing.package_size must be greater than 0",
        ),
        # tiers missing / empty
        ({"model": "graduated"}, "pricing.tiers is required"),
        ({"model": "volume", "tiers": []}, "pricing.tiers must be a non-empty list"),
        # tiers not ascending
        (
            {
                "model": "graduated",
                "tiers": [
                    {"up_to": "100", "unit_price": "1"},
                    {"up_to": "100", "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"},
                ],
            },
            "pricing.tiers[1].up_to must be greater than the previous tier's up_to",
        ),
        # last tier not open-ended
        (
            {"model": "graduated", "tiers": [{"up_to": "100", "unit_price": "1"}]},
            "pricing.tiers[0].up_to must be null: the last tier is open-ended",
        ),
        # open-ended tier before the last
        (
            {
                "model": "volume",
                "tiers": [{"up_to": None, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}],
            },
            "pricing.tiers[0].up_to is null but only the last tier may be open-ended",
        ),
        # up_to missing
        (
            {"model": "volume", "tiers": [{"unit_price": "1"}]},
            "pricing.tiers[0].up_to is required",
        ),
        # negative flat fee
        (
            {"model": "graduated", "tiers": [{"up_to": None, "unit_price": "1", "flat_fee": "-2"}]},
            "pricing.tiers[0].flat_fee must be >= 0",
        ),
        # up_to of 0 would make an empty tier
        (
            {
                "model": "graduated",
                "tiers": [{"up_to": "0", "unit_price": "1"}, {"up_to": None, "unit_price": "1"}],
            },
            "pricing.tiers[0].up_to must be greater than 0",
        ),
    ],
)
def test_parse_rejects(data: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_pricing(data)
    assert message in info.value.message


def test_compute_refuses_negative_quantity() -> None:
    with pytest.raises(ValueError):
        PerUnit(unit_price=D(1)).compute(D(-1))


# --- properties ---------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False)
quantities = st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(set(draw(st.lists(st.integers(1, 10**6), max_size=4))))
    ups: list[D | None] = [D(b) for b in bounds]
    ups.append(None)
    return tuple(Tier(up_to=u, unit_price=draw(money), flat_fee=draw(money)) for u in ups)


@settings(deadline=None)  # no timing assertions on a shared machine
@given(tier_lists(), quantities, quantities)
def test_graduated_is_monotone(tiers: tuple[Tier, ...], a: D, b: D) -> None:
    low, high = sorted((a, b))
    model = Graduated(tiers=tiers)
    assert model.compute(low).amount <= model.compute(high).amount


@settings(deadline=None)  # no timing assertions on a shared machine
@given(money, money, quantities)
def test_volume_equals_graduated_with_one_tier(price: D, fee: D, q: D) -> None:
    tiers = (Tier(up_to=None, unit_price=price, flat_fee=fee),)
    assert Volume(tiers=tiers).compute(q).amount == Graduated(tiers=tiers).compute(q).amount


@settings(deadline=None)  # no timing assertions on a shared machine
@given(
    tier_lists(), money, st.decimals(min_value=D("0.000001"), max_value=10**6, places=6), quantities
)
def test_amount_never_negative(tiers: tuple[Tier, ...], price: D, size: D, q: D) -> None:
    for model in (
        Graduated(tiers=tiers),
        Volume(tiers=tiers),
        PerUnit(unit_price=price),
        Package(package_size=size, package_price=price),
    ):
        result = model.compute(q)
        assert result.amount >= 0
        assert sum((i.amount for i in result.breakdown), D(0)) == result.amount


@pytest.mark.parametrize(
    "pricing",
    [
        {"model": "per_unit", "unit_price": "1e16"},
        {"model": "package", "package_size": "1000", "package_price": "2000000000000000"},
        {"model": "graduated", "tiers": [{"up_to": None, "unit_price": "1", "flat_fee": "1e20"}]},
    ],
)
def test_prices_are_bounded_at_plan_creation(pricing: dict[str, object]) -> None:
    """No stored price can overflow an invoice line by itself (issue 11): 422 at creation."""
    with pytest.raises(InvalidInput, match="must be at most 1,000,000,000,000,000"):
        parse_pricing(pricing)
