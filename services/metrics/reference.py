"""The billable metric rules (contract section 4a) in plain Python, event by event.

Slow and obvious on purpose: the property test in tests/services/metrics holds the DuckDB
computation (`services.metrics.compute`) to this on random events. Input events are lake
rows: tenant_id, event_id, metric, quantity_micros, occurred_at (aware datetime),
properties (the lake's JSON text or None).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from models.events import MAX_QUANTITY_MICROS, quantity_micros_exact
from models.metrics import MetricDefinition
from models.period import BillingPeriod
from services.metrics.compute import (
    EPOCH,
    Group,
    SubscriptionWindow,
    UsageRow,
    canonical_decimal,
    carries_level,
    day_us,
    micros_to_decimal,
)


class _Number(str):
    """A JSON number's text (told apart from a JSON string)."""

    __slots__ = ()


def _properties(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    value = json.loads(text, parse_float=_Number, parse_int=_Number)
    return value if isinstance(value, dict) else {}


def _value_micros(raw: Any) -> int | None:
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, _Number):
        micros = quantity_micros_exact(str(raw), "number")
    elif isinstance(raw, str):
        micros = quantity_micros_exact(raw, "string")
    else:
        return None
    if micros is None or not 0 <= micros <= MAX_QUANTITY_MICROS:
        return None
    return micros


def _distinct_text(raw: Any) -> str | None:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, _Number):
        return canonical_decimal(str(raw))
    if isinstance(raw, str):
        return raw
    return None


def _at_us(at: dt.datetime) -> int:
    return (at - EPOCH) // dt.timedelta(microseconds=1)


def reference_metric_usage(
    events: Sequence[Mapping[str, Any]],
    metric: MetricDefinition,
    periods: Sequence[BillingPeriod],
    subscription_windows: Sequence[SubscriptionWindow] = (),
) -> tuple[list[UsageRow], int]:
    """(rows, unreadable events inside the periods) of one metric."""
    chosen: list[tuple[str, str, int, Group, int | None, str | None]] = []
    horizon = day_us(max(p.end for p in periods))
    starts = {p.start for p in periods}
    carries = carries_level(metric)
    for e in events:
        if e["metric"] != metric.event_metric:
            continue
        at = _at_us(e["occurred_at"])
        if at >= horizon or (not carries and e["occurred_at"].date().replace(day=1) not in starts):
            continue
        props = _properties(e["properties"])
        if not all(
            isinstance(props.get(k), str)
            and not isinstance(props.get(k), _Number)
            and props[k] in values
            for k, values in metric.filters
        ):
            continue
        group = tuple(
            v if isinstance(v := props.get(k), str) and not isinstance(v, _Number) else None
            for k in metric.group_by
        )
        key = metric.value_key
        raw = props.get(key) if key is not None else None
        if metric.aggregation == "count":
            value: int | None = 0
        elif key is None:
            value = int(e["quantity_micros"])
        else:
            value = _value_micros(raw)
        distinct = _distinct_text(raw) if metric.aggregation == "unique_count" else None
        chosen.append((e["tenant_id"], e["event_id"], at, group, value, distinct))

    def readable(c: tuple[str, str, int, Group, int | None, str | None]) -> bool:
        if metric.aggregation == "unique_count":
            return c[5] is not None
        return c[4] is not None

    unreadable = sum(
        1
        for c in chosen
        if not readable(c) and any(day_us(p.start) <= c[2] < day_us(p.end) for p in periods)
    )
    rows: list[UsageRow] = []
    for period in periods:
        p_start, p_end = day_us(period.start), day_us(period.end)
        tenants = sorted({c[0] for c in chosen if c[2] < p_end and (carries or c[2] >= p_start)})
        for tenant in tenants:
            windows = {(period.start, period.end)} | {
                (w.window_start, w.window_end)
                for w in subscription_windows
                if w.tenant_id == tenant and w.period_start == period.start
            }
            mine = [c for c in chosen if c[0] == tenant and readable(c)]
            for start, end in sorted(windows):
                rows += _window_rows(metric, tenant, period, start, end, mine)
    return rows, unreadable


def _window_rows(
    metric: MetricDefinition,
    tenant: str,
    period: BillingPeriod,
    start: dt.date,
    end: dt.date,
    mine: list[tuple[str, str, int, Group, int | None, str | None]],
) -> list[UsageRow]:
    ws, we = day_us(start), day_us(end)

    def row(group: Group | None, micros: int) -> UsageRow:
        return UsageRow(
            metric.code, tenant, period.start, start, end, group, micros_to_decimal(micros)
        )

    if metric.aggregation == "time_weighted_sum":
        by_group: dict[Group, list[tuple[int, str, int]]] = defaultdict(list)
        for _, event_id, at, group, value, _d in mine:
            assert value is not None
            by_group[group].append((at, event_id, value))
        values: dict[Group, int] = {}
        for group, items in by_group.items():
            if not any(at < we for at, _, _ in items):
                continue
            levels: dict[int, tuple[str, int]] = {}
            for at, event_id, value in items:
                if at not in levels or event_id > levels[at][0]:
                    levels[at] = (event_id, value)
            instants = sorted(levels)
            numerator = 0
            for i, at in enumerate(instants):
                nxt = instants[i + 1] if i + 1 < len(instants) else None
                lo, hi = max(at, ws), min(nxt if nxt is not None else we, we)
                if hi > lo:
                    numerator += levels[at][1] * (hi - lo)
            unit = metric.seconds_per_unit * 1_000_000
            q, r = divmod(numerator, unit)
            if 2 * r > unit or (2 * r == unit and q % 2 == 1):
                q += 1
            values[group] = q
        return _grouped_rows(metric, values, row, sum_total=True)
    inside = [c for c in mine if ws <= c[2] < we]
    if not inside:
        return []

    def value_of(items: list[tuple[str, str, int, Group, int | None, str | None]]) -> int:
        agg = metric.aggregation
        if agg == "count":
            return len(items) * 1_000_000
        nums = [int(c[4]) for c in items if c[4] is not None]
        if agg == "sum":
            return sum(nums)
        if agg == "max":
            return max(nums)
        if agg == "unique_count":
            return len({c[5] for c in items}) * 1_000_000
        if agg == "latest":
            last = max(items, key=lambda c: (c[2], c[1]))
            return int(last[4] or 0)
        assert agg == "percentile" and metric.percentile is not None
        ordered = sorted(nums)
        p_micros = int(metric.percentile.scaleb(6))
        rank = (len(ordered) * p_micros + 99_999_999) // 100_000_000
        return ordered[rank - 1]

    groups: dict[Group, list[tuple[str, str, int, Group, int | None, str | None]]] = defaultdict(
        list
    )
    for c in inside:
        groups[c[3]].append(c)
    values = {g: value_of(items) for g, items in groups.items()}
    out = _grouped_rows(metric, values, row, sum_total=metric.aggregation == "latest")
    if metric.grouped and metric.aggregation != "latest":
        out.append(row(None, value_of(inside)))
    return out


def _grouped_rows(
    metric: MetricDefinition, values: dict[Group, int], row: Any, *, sum_total: bool
) -> list[UsageRow]:
    if not values:
        return []
    if not metric.grouped:
        return [row(None, next(iter(values.values())))]
    out = [row(g, v) for g, v in values.items()]
    if sum_total:
        out.append(row(None, sum(values.values())))
    return out
