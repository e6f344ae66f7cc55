"""Pushed events that Postgres cannot store, turned into row rejections before validation.

A NUL character (U+0000) is valid JSON text but Postgres refuses it in text and JSONB
("unsupported Unicode escape sequence"): one such event would fail the whole INSERT with
a 500 and lose the good events of its batch. Such an event is replaced by a non-object
placeholder, which the event rules reject as `malformed_row` at the same index; the rest
of the batch goes on. (NUL in an id or tenant is already an invalid id by the rules.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

POISON_PLACEHOLDER = "<event holding a NUL character>"


def holds_nul(value: Any) -> bool:
    """Does a parsed JSON value hold U+0000 in any string or key (iteratively: a value
    nested deep enough to break a recursive walk was refused by the parser already)?"""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def without_poison(events: Sequence[Any]) -> list[Any]:
    """The batch with every event that holds a NUL replaced by a placeholder."""
    return [POISON_PLACEHOLDER if holds_nul(e) else e for e in events]
