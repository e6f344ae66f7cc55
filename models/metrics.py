"""Billable metrics (contract section 4a): the definition and its strict parser.

A billable metric says what a quota measures over the events in the lake: which events
(`event_metric`, `filters`), which value (`quantity` or a property), how they aggregate over
a window, and per which groups (`group_by`). Definitions are immutable: a new definition
is a new code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from models.decimals import DecimalRefused, exact_decimal
from models.identifiers import METRIC_PATTERN as METRIC_RE
from tallyflow.core.errors import InvalidInput

AGGREGATIONS: Final = (
    "sum",
    "count",
    "max",
    "unique_count",
    "latest",
    "time_weighted_sum",
    "percentile",
)
# NOTE: the aggregations a quota without a billable metric can use (section 4).
EVENT_AGGREGATIONS: Final = ("sum", "count", "max")
TIME_UNITS: Final = {"hour": 3600, "day": 86400}
PROPERTY_KEY_RE: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_GROUP_BY: Final = 3
# NOTE: not in the contract: bounds that keep a definition (and its SQL parameters) small.
MAX_FILTER_KEYS: Final = 16
MAX_FILTER_VALUES: Final = 1000
MAX_NAME_LENGTH: Final = 200
MAX_VALUE_LENGTH: Final = 1000

_FIELDS: Final = {
    "code",
    "name",
    "event_metric",
    "aggregation",
    "value",
    "percentile",
    "time_unit",
    "filters",
    "group_by",
}
_METRIC = re.compile(METRIC_RE)
_KEY = re.compile(PROPERTY_KEY_RE)
_PERCENT = re.compile(r"^(?:[0-9]{1,3})(?:\.[0-9]{1,6})?$")


@dataclass(frozen=True)
class MetricDefinition:
    """One billable metric, as stored in the `metrics` table."""

    code: str
    name: str
    event_metric: str
    aggregation: str
    value: str = "quantity"  # "quantity" or "properties.<key>"
    percentile: Decimal | None = None
    time_unit: str | None = None
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    group_by: tuple[str, ...] = ()

    @property
    def value_key(self) -> str | None:
        """The property the value is read from (None: the event's quantity)."""
        return self.value.removeprefix("properties.") if self.value != "quantity" else None

    @property
    def grouped(self) -> bool:
        return bool(self.group_by)

    @property
    def seconds_per_unit(self) -> int:
        return TIME_UNITS[self.time_unit or "hour"]

    def to_json(self) -> dict[str, Any]:
        """The API shape (also what the `metrics` row holds, field by field)."""
        return {
            "code": self.code,
            "name": self.name,
            "event_metric": self.event_metric,
            "aggregation": self.aggregation,
            "value": self.value,
            "percentile": None if self.percentile is None else str(self.percentile),
            "time_unit": self.time_unit,
            "filters": {key: list(values) for key, values in self.filters},
            "group_by": list(self.group_by),
        }

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> MetricDefinition:
        filters = row["filters"] or {}
        return cls(
            code=row["code"],
            name=row["name"],
            event_metric=row["event_metric"],
            aggregation=row["aggregation"],
            value=row["value"],
            # NOTE: NUMERIC(9,6) reads back as 95.000000; shown as written (95)
            percentile=None
            if row["percentile"] is None
            else Decimal(format(row["percentile"].normalize(), "f")),
            time_unit=row["time_unit"],
            filters=tuple((k, tuple(v)) for k, v in sorted(filters.items())),
            group_by=tuple(row["group_by"] or ()),
        )

    @classmethod
    def parse(cls, data: object) -> MetricDefinition:
        """A definition from a request body, strictly: InvalidInput naming the bad field."""
        if not isinstance(data, Mapping):
            raise InvalidInput("body must be a JSON object")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise InvalidInput(f"{unknown[0]} is not a known field")
        code = _text(data, "code", required=True)
        if not _METRIC.fullmatch(code):
            raise InvalidInput(f"code {code!r} must match {METRIC_RE}")
        # NOTE: a field left out (or null) takes its default; an empty string is refused.
        name = code if data.get("name") is None else _text(data, "name", required=True)
        if not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise InvalidInput(f"name must be 1 to {MAX_NAME_LENGTH} characters")
        event_metric = (
            code if data.get("event_metric") is None else _text(data, "event_metric", required=True)
        )
        if not _METRIC.fullmatch(event_metric):
            raise InvalidInput(f"event_metric {event_metric!r} must match {METRIC_RE}")
        aggregation = _text(data, "aggregation", required=True)
        if aggregation not in AGGREGATIONS:
            raise InvalidInput(
                f"aggregation {aggregation!r} must be one of {', '.join(AGGREGATIONS)}"
            )
        value = "quantity" if data.get("value") is None else _text(data, "value", required=True)
        if value != "quantity":
            key = value.removeprefix("properties.")
            if key == value or not _KEY.fullmatch(key):
                raise InvalidInput(
                    f'value {value!r} must be "quantity" or "properties.<key>" with the key'
                    f" matching {PROPERTY_KEY_RE}"
                )
        if aggregation == "unique_count" and value == "quantity":
            raise InvalidInput('value must name a property ("properties.<key>") for unique_count')
        if aggregation == "count":
            value = "quantity"  # NOTE: count ignores the value (contract 4a); stored canonical
        percentile = _percentile(data, aggregation)
        time_unit = _time_unit(data, aggregation)
        filters = _filters(data.get("filters"))
        group_by = _group_by(data.get("group_by"))
        return cls(
            code=code,
            name=name,
            event_metric=event_metric,
            aggregation=aggregation,
            value=value,
            percentile=percentile,
            time_unit=time_unit,
            filters=filters,
            group_by=group_by,
        )


def _text(data: Mapping[str, Any], field: str, *, required: bool) -> str:
    raw = data.get(field)
    if raw is None:
        if required:
            raise InvalidInput(f"{field} is required")
        return ""
    if not isinstance(raw, str):
        raise InvalidInput(f"{field} must be a string")
    _storable(raw, field)
    return raw


def _storable(text: str, field: str) -> None:
    """Postgres text and JSONB hold neither NUL nor lone surrogates: a 422, not a 500."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} must be valid Unicode text") from None
    if "\x00" in text:
        raise InvalidInput(f"{field} must not contain NUL characters")


def _percentile(data: Mapping[str, Any], aggregation: str) -> Decimal | None:
    raw = data.get("percentile")
    if aggregation != "percentile":
        if raw is not None:
            raise InvalidInput("percentile is allowed with aggregation percentile only")
        return None
    if raw is None:
        raise InvalidInput("percentile is required with aggregation percentile")
    if not isinstance(raw, str):
        raise InvalidInput('percentile must be a decimal string, e.g. "95"')
    if not _PERCENT.fullmatch(raw):
        raise InvalidInput(
            f"percentile {raw!r} must be a decimal string with at most 6 decimals, 0 < p <= 100"
        )
    try:
        p = exact_decimal(raw)
    except DecimalRefused:  # pragma: no cover - the pattern admits only decimals
        raise InvalidInput(f"percentile {raw!r} is not a decimal") from None
    if not Decimal(0) < p <= Decimal(100):
        raise InvalidInput(f"percentile {raw!r} must be greater than 0 and at most 100")
    return p


def _time_unit(data: Mapping[str, Any], aggregation: str) -> str | None:
    raw = data.get("time_unit")
    if aggregation != "time_weighted_sum":
        if raw is not None:
            raise InvalidInput("time_unit is allowed with aggregation time_weighted_sum only")
        return None
    if raw is None:
        return "hour"
    if raw not in TIME_UNITS:
        raise InvalidInput(f'time_unit {raw!r} must be "hour" or "day"')
    return str(raw)


def _filters(raw: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise InvalidInput("filters must be an object {key: [string, ...]}")
    if len(raw) > MAX_FILTER_KEYS:
        raise InvalidInput(f"filters may name at most {MAX_FILTER_KEYS} keys")
    out: list[tuple[str, tuple[str, ...]]] = []
    for key, values in raw.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise InvalidInput(f"filters.{key} must be a property key matching {PROPERTY_KEY_RE}")
        if not isinstance(values, list) or not values:
            raise InvalidInput(f"filters.{key} must be a non-empty list of strings")
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidInput(f"filters.{key} may list at most {MAX_FILTER_VALUES} values")
        for i, v in enumerate(values):
            if not isinstance(v, str) or len(v) > MAX_VALUE_LENGTH:
                raise InvalidInput(
                    f"filters.{key}[{i}] must be a string of at most {MAX_VALUE_LENGTH} characters"
                )
            _storable(v, f"filters.{key}[{i}]")
        out.append((key, tuple(sorted(set(values)))))
    return tuple(sorted(out))


def _group_by(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidInput("group_by must be a list of property keys")
    if len(raw) > MAX_GROUP_BY:
        raise InvalidInput(f"group_by may name at most {MAX_GROUP_BY} keys")
    for i, key in enumerate(raw):
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise InvalidInput(f"group_by[{i}] must be a property key matching {PROPERTY_KEY_RE}")
    if len(set(raw)) != len(raw):
        raise InvalidInput("group_by must not repeat a key")
    return tuple(raw)


__all__ = [
    "AGGREGATIONS",
    "EVENT_AGGREGATIONS",
    "MAX_GROUP_BY",
    "PROPERTY_KEY_RE",
    "TIME_UNITS",
    "MetricDefinition",
]
