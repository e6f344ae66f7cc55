"""Money: minor units from Babel's CLDR data, half-up rounding, unknown currencies refused."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from models.money import check_currency, minor_units, quantum, round_money
from tallyflow.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("currency", "digits"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3), ("CLF", 4)],
)
def test_minor_units(currency: str, digits: int) -> None:
    assert minor_units(currency) == digits
    assert quantum(currency) == D(1).scaleb(-digits)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        # USD: a tie goes up (half-up, not banker's rounding)
        ("2.345", "USD", "2.35"),
        # USD: below the tie goes down
        ("2.3449999", "USD", "2.34"),
        # USD: half-even would give 0.12 here; half-up gives 0.13
        ("0.125", "USD", "0.13"),
        # JPY has no minor unit: 0.5 yen rounds up to 1
        ("100.5", "JPY", "101"),
        ("100.4999", "JPY", "100"),
        # BHD has three decimals
        ("1.2345", "BHD", "1.235"),
        ("1.2344", "BHD", "1.234"),
        # KWD too; an integer gains its three decimals
        ("7", "KWD", "7.000"),
        # zero stays zero at the currency's scale
        ("0", "USD", "0.00"),
    ],
)
def test_round_money(amount: str, currency: str, expected: str) -> None:
    rounded = round_money(D(amount), currency)
    assert rounded == D(expected)
    assert str(rounded) == expected


@pytest.mark.parametrize("currency", ["XYZ", "usd", "US", "", "EURO"])
def test_unknown_currency_is_an_error(currency: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_currency(currency)
    assert info.value.code == "unknown_currency"
    with pytest.raises(InvalidInput):
        round_money(D(1), currency)


def test_float_refused() -> None:
    with pytest.raises(ValueError):
        round_money(1.5, "USD")  # type: ignore[arg-type]
