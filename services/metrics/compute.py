"""A pure function from (lake files, metric definitions, windows) to metric values, in DuckDB.

For each billable metric and each period given: the value per tenant, window and group,
and the total per tenant and window. A window is the calendar month (for every tenant with
an event of the metric) or a subscription's days inside it. Values are exact: micro-units
as HUGEINT in DuckDB, Decimal in Python (never float). `services.metrics.reference` states
the same rules in plain Python; a property test holds the two to the same answers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl
from duckdb.func import FunctionNullHandling

from models.events import quantity_micros_exact
from models.metrics import MetricDefinition
from models.period import BillingPeriod
from tallyflow.core import storage
from tallyflow.core.sqlfiles import duckdb_sql

Group = tuple[str | None, ...]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class SubscriptionWindow:
    """A subscription's days [window_start, window_end) inside the period of period_start."""

    tenant_id: str
    period_start: dt.date
    window_start: dt.date
    window_end: dt.date


@dataclass(frozen=True)
class UsageRow:
    """One value: of a group (its values in group_by order) or the total (group None)."""

    metric_code: str
    tenant_id: str
    period_start: dt.date
    window_start: dt.date
    window_end: dt.date
    group: Group | None
    value: Decimal


@dataclass
class MetricComputation:
    rows: list[UsageRow] = field(default_factory=list)
    # metric code -> events inside the periods whose value could not be read (skipped)
    unreadable: dict[str, int] = field(default_factory=dict)


def day_us(day: dt.date) -> int:
    """Epoch microseconds of a UTC midnight."""
    return (dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(
        microseconds=1
    )


def micros_to_decimal(micros: int) -> Decimal:
    return Decimal(int(micros)).scaleb(-6)


def canonical_decimal(text: str | None) -> str | None:
    """A number's canonical decimal text: no exponent, no trailing zeros ("1.0" -> "1")."""
    if text is None:
        return None
    try:
        number = Decimal(text.strip())
    except ArithmeticError:
        return None
    if not number.is_finite():
        return None
    if number == 0:
        return "0"
    out = format(number.normalize(), "f")
    return out


def carries_level(metric: MetricDefinition) -> bool:
    """time_weighted_sum reads the lake's whole history (levels carry across periods)."""
    return metric.aggregation == "time_weighted_sum"


def _json_path(key: str | None) -> str | None:
    # NOTE: keys match PROPERTY_KEY_RE (letters, digits, _), quoted anyway.
    return None if key is None else f'$."{key}"'


def connect(urls: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can read `urls` (local or object store), with the reference
    value parsers registered (UTC session)."""
    con = storage.connect_duckdb(urls)
    con.execute("SET TimeZone = 'UTC'")
    con.create_function(
        "quantity_micros_exact",
        quantity_micros_exact,
        ["VARCHAR", "VARCHAR"],
        "BIGINT",
        null_handling=FunctionNullHandling.SPECIAL,
    )
    con.create_function(
        "canonical_decimal",
        canonical_decimal,
        ["VARCHAR"],
        "VARCHAR",
        null_handling=FunctionNullHandling.SPECIAL,
    )
    return con


def select_files(
    files: Sequence[tuple[str, dt.date]],
    metrics: Sequence[MetricDefinition],
    periods: Sequence[BillingPeriod],
) -> list[str]:
    """The lake files a computation reads: the periods' days, and all earlier days when a
    metric carries a level."""
    if not periods or not metrics:
        return []
    horizon = max(p.end for p in periods)
    months = {p.start for p in periods}
    history = any(carries_level(m) for m in metrics)
    return [
        path for path, day in files if day < horizon and (history or day.replace(day=1) in months)
    ]


def compute_metric_usage(
    files: Sequence[tuple[str, dt.date]],
    metrics: Sequence[MetricDefinition],
    periods: Sequence[BillingPeriod],
    subscription_windows: Sequence[SubscriptionWindow] = (),
    tenant_ids: Sequence[str] | None = None,
) -> MetricComputation:
    """Every metric's values for the periods (all tenants, or `tenant_ids`).

    `files` are (path, usage_date) of the lake files that count (the manifest plus the run's
    new files); only those a computation needs are read.
    """
    out = MetricComputation()
    paths = select_files(files, metrics, periods)
    if not paths:
        out.unreadable = {m.code: 0 for m in metrics}
        return out
    con = connect(paths)
    try:
        con.execute(
            duckdb_sql("metrics/create_lake_events"),
            {
                "files": paths,
                "event_metrics": sorted({m.event_metric for m in metrics}),
                "tenants": None if tenant_ids is None else list(tenant_ids),
            },
        )
        con.register("periods", _periods_frame(periods))
        con.register("subscription_windows", _windows_frame(subscription_windows, periods))
        horizon_us = day_us(max(p.end for p in periods))
        for metric in metrics:
            _compute_one(con, metric, periods, horizon_us, out)
    finally:
        con.close()
    return out


def _periods_frame(periods: Sequence[BillingPeriod]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "period_start": [p.start for p in periods],
            "period_end": [p.end for p in periods],
            "start_us": [day_us(p.start) for p in periods],
            "end_us": [day_us(p.end) for p in periods],
        },
        schema={
            "period_start": pl.Date,
            "period_end": pl.Date,
            "start_us": pl.Int64,
            "end_us": pl.Int64,
        },
    )


def _windows_frame(
    windows: Sequence[SubscriptionWindow], periods: Sequence[BillingPeriod]
) -> pl.DataFrame:
    starts = {p.start for p in periods}
    kept = [w for w in windows if w.period_start in starts]
    return pl.DataFrame(
        {
            "tenant_id": [w.tenant_id for w in kept],
            "period_start": [w.period_start for w in kept],
            "window_start": [w.window_start for w in kept],
            "window_end": [w.window_end for w in kept],
            "start_us": [day_us(w.window_start) for w in kept],
            "end_us": [day_us(w.window_end) for w in kept],
        },
        schema={
            "tenant_id": pl.String,
            "period_start": pl.Date,
            "window_start": pl.Date,
            "window_end": pl.Date,
            "start_us": pl.Int64,
            "end_us": pl.Int64,
        },
    )


_AGGREGATE_SQL = {
    "sum": "aggregate_window_sums",
    "count": "aggregate_window_sums",
    "max": "aggregate_window_sums",
    "unique_count": "aggregate_window_unique_counts",
    "latest": "aggregate_window_latest",
    "percentile": "aggregate_window_percentiles",
    "time_weighted_sum": "aggregate_window_time_weighted",
}


def _compute_one(
    con: duckdb.DuckDBPyConnection,
    metric: MetricDefinition,
    periods: Sequence[BillingPeriod],
    horizon_us: int,
    out: MetricComputation,
) -> None:
    keys = [*metric.group_by, None, None, None][:3]
    carries = carries_level(metric)
    con.execute(
        duckdb_sql("metrics/create_metric_events"),
        {
            "event_metric": metric.event_metric,
            "horizon_end_us": horizon_us,
            "carries_level": carries,
            "period_starts": [p.start for p in periods],
            "filters": [
                {"path": _json_path(key), "vals": list(values)} for key, values in metric.filters
            ],
            "value_path": _json_path(metric.value_key),
            "g1": _json_path(keys[0]),
            "g2": _json_path(keys[1]),
            "g3": _json_path(keys[2]),
            "aggregation": metric.aggregation,
        },
    )
    con.execute(duckdb_sql("metrics/create_metric_windows"), {"carries_level": carries})
    unreadable = con.execute(duckdb_sql("metrics/count_unreadable_values")).fetchall()
    out.unreadable[metric.code] = sum(int(n) for _, n in unreadable)
    params: dict[str, Any] = {}
    if metric.aggregation == "percentile":
        assert metric.percentile is not None
        params["p_micros"] = int(metric.percentile.scaleb(6))
    if metric.aggregation == "time_weighted_sum":
        params["unit_us"] = metric.seconds_per_unit * 1_000_000
    found = con.execute(
        duckdb_sql(f"metrics/{_AGGREGATE_SQL[metric.aggregation]}"), params
    ).fetchall()
    width = len(metric.group_by)
    totals: dict[tuple[str, dt.date, dt.date, dt.date], int] = defaultdict(int)
    sum_groups = metric.aggregation in ("latest", "time_weighted_sum")
    for row in found:
        tenant_id, period_start, window_start, window_end, g1, g2, g3, is_total, *values = row
        micros = _pick(metric.aggregation, values)
        where = (tenant_id, period_start, window_start, window_end)
        if is_total:
            if not sum_groups or not width:
                totals[where] = micros
            continue
        if not width:
            if metric.aggregation == "time_weighted_sum":
                totals[where] = micros  # the one group of an ungrouped metric is its total
            continue
        if sum_groups:
            totals[where] += micros
        out.rows.append(
            UsageRow(
                metric.code,
                tenant_id,
                period_start,
                window_start,
                window_end,
                (g1, g2, g3)[:width],
                micros_to_decimal(micros),
            )
        )
    for (tenant_id, period_start, window_start, window_end), micros in totals.items():
        out.rows.append(
            UsageRow(
                metric.code,
                tenant_id,
                period_start,
                window_start,
                window_end,
                None,
                micros_to_decimal(micros),
            )
        )


def _pick(aggregation: str, values: list[Any]) -> int:
    if aggregation in ("sum", "count", "max"):
        sum_micros, count_micros, max_micros = values
        chosen = {"sum": sum_micros, "count": count_micros, "max": max_micros}[aggregation]
        return int(chosen or 0)
    return int(values[0] or 0)
