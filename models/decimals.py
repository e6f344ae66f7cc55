"""Decimal parsing of request numbers: one rule for API bodies and pricing documents.

A decimal string or a JSON number is taken by its text (`0.1` is exactly Decimal("0.1"),
never the binary float 0.1000000000000000055...); booleans, NaN and infinities are refused.
Callers word the refusal for their field (`DecimalRefused.kind` says which rule failed).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal

RefusalKind = Literal["type", "syntax", "infinite"]


class DecimalRefused(ValueError):
    """A value that is not an exact finite decimal; `kind`: type, syntax or infinite."""

    def __init__(self, value: object, kind: RefusalKind) -> None:
        super().__init__(f"{value!r} is not a finite decimal number ({kind})")
        self.value = value
        self.kind: RefusalKind = kind


def exact_decimal(value: object) -> Decimal:
    """The exact finite Decimal of a decimal string (surrounding blanks ignored), an int, a
    float (by its shortest text) or a Decimal; DecimalRefused otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise DecimalRefused(value, "type")
    text = value.strip() if isinstance(value, str) else str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise DecimalRefused(value, "syntax") from None
    if not number.is_finite():
        raise DecimalRefused(value, "infinite")
    return number
