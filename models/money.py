"""Money: currency minor units from CLDR (via Babel) and half-up rounding to them.

NOTE: the number of decimals comes from Babel's copy of the CLDR currency data (USD 2,
JPY 0, BHD/KWD 3, CLF 4), not from a hand-typed table. CLDR's rule gives 2 to a known
currency it does not list; a code Babel does not know at all is an error, never a
silent default.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from babel.core import get_global
from babel.numbers import UnknownCurrencyError, validate_currency

from models.pricing.base import PRICING_CONTEXT
from tallyflow.core.errors import InvalidInput


def currency_problem(currency: object) -> str | None:
    """What is wrong with a currency code (None: Babel knows it, ISO 4217, upper case).

    The one currency rule: check_currency (InvalidInput) and the API's request models
    (models.api.iso_currency, a 422) both word their refusal from it."""
    if (
        not isinstance(currency, str)
        or len(currency) != 3
        or not currency.isascii()
        or not currency.isupper()
    ):
        return "must be a 3-letter ISO 4217 code"
    try:
        validate_currency(currency)
    except UnknownCurrencyError:
        return "is not a known ISO 4217 currency"
    return None


def check_currency(currency: str) -> str:
    """The currency code if Babel knows it (ISO 4217, upper case); InvalidInput otherwise."""
    problem = currency_problem(currency)
    if problem is not None:
        raise InvalidInput(f"currency {currency!r} {problem}", code="unknown_currency")
    return currency


@cache
def minor_units(currency: str) -> int:
    """Decimals of the currency's minor unit (USD 2, JPY 0, BHD 3)."""
    check_currency(currency)
    fractions = get_global("currency_fractions")
    digits, *_ = fractions.get(currency, fractions["DEFAULT"])
    return int(digits)


@cache
def quantum(currency: str) -> Decimal:
    """The smallest amount of the currency: Decimal('0.01') for USD, Decimal('1') for JPY."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up (away from zero on a tie) to the currency's minor unit."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"amount must be a finite Decimal, got {amount!r}")
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP, context=PRICING_CONTEXT)
