"""The matrix pricing model: first match in list order, null matches a missing value, the
required default, per-entry allowance, strict parsing."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from models.pricing import Matrix, parse_pricing
from models.pricing.matrix import check_matrix_keys
from tallyflow.core.errors import InvalidInput

PER_UNIT = {"model": "per_unit", "unit_price": "1"}

MATRIX: dict[str, Any] = {
    "model": "matrix",
    "prices": [
        {
            "match": {"model": "large", "region": "eu"},
            "included": "10",
            "pricing": {"model": "per_unit", "unit_price": "3"},
        },
        {"match": {"model": "large"}, "pricing": {"model": "per_unit", "unit_price": "2"}},
        {
            "match": {"model": None},
            "pricing": {"model": "package", "package_size": "10", "package_price": "5"},
        },
    ],
    "default": {"included": "1", "pricing": PER_UNIT},
}


def matrix() -> Matrix:
    parsed = parse_pricing(MATRIX)
    assert isinstance(parsed, Matrix)
    return parsed


@pytest.mark.parametrize(
    ("group", "value", "entry", "billable", "amount"),
    [
        # the first entry that matches, in list order: both keys match entry 1
        ({"model": "large", "region": "eu"}, D(25), 1, D(15), D(45)),
        # entry 1 needs region eu: entry 2 (only model) prices it
        ({"model": "large", "region": "us"}, D(25), 2, D(25), D(50)),
        # a missing model matches null (entry 3): 2 started packages of 10
        ({"model": None, "region": "eu"}, D(11), 3, D(11), D(10)),
        # nothing matches: the default, with its own included
        ({"model": "small", "region": "eu"}, D(5), None, D(4), D(4)),
        # below the entry's allowance: 0 billable, 0 cost
        ({"model": "large", "region": "eu"}, D(3), 1, D(0), D(0)),
    ],
)
def test_first_match_order_and_default(
    group: dict[str, str | None], value: D, entry: int | None, billable: D, amount: D
) -> None:
    price = matrix().price_group(group, value)
    assert (price.entry, price.billable, price.result.amount) == (entry, billable, amount)


def test_round_trip_is_canonical() -> None:
    once = matrix().to_json()
    assert parse_pricing(once).to_json() == once
    assert once["default"] == {"included": "1", "pricing": {"model": "per_unit", "unit_price": "1"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"default": "x"}, "pricing.default must be an object"),
        ({"prices": "x"}, "pricing.prices must be a list"),
        ({"prices": [{"match": {}, "pricing": PER_UNIT}]}, "pricing.prices[0].match must name"),
        (
            {"prices": [{"match": {"m": 1}, "pricing": PER_UNIT}]},
            "pricing.prices[0].match.m must be",
        ),
        ({"prices": [{"pricing": PER_UNIT}]}, "pricing.prices[0].match is required"),
        (
            {"prices": [{"match": {"m": "a"}, "pricing": PER_UNIT, "x": 1}]},
            "pricing.prices[0].x is not",
        ),
        (
            {"prices": [{"match": {"m": "a"}, "included": "-1", "pricing": PER_UNIT}]},
            "pricing.prices[0].included must be >= 0",
        ),
        (
            {"prices": [{"match": {"m": "a"}, "pricing": {"model": "per_unit"}}]},
            "pricing.prices[0].pricing.unit_price is required",
        ),
        ({"default": {"pricing": MATRIX}}, "pricing.default.pricing.model must not be matrix"),
        ({"default": {"match": {"m": "a"}, "pricing": PER_UNIT}}, "pricing.default.match is not"),
        ({"extra": 1}, "pricing.extra is not"),
    ],
)
def test_strict_parse(change: dict[str, Any], message: str) -> None:
    data = {**MATRIX, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(InvalidInput) as info:
        parse_pricing(data)
    assert info.value.message.startswith(message), info.value.message


def test_default_is_required() -> None:
    with pytest.raises(InvalidInput, match=r"pricing\.default is required"):
        parse_pricing({k: v for k, v in MATRIX.items() if k != "default"})


def test_match_keys_must_be_group_by_keys() -> None:
    check_matrix_keys(matrix(), ["model", "region"], "pricing")
    with pytest.raises(InvalidInput, match=r"pricing\.prices\[0\]\.match\.region is not among"):
        check_matrix_keys(matrix(), ["model"], "pricing")
