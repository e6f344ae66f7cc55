"""The plan: a narrow numeric row per event (tenant, metric, instant, micro-units, styles, kind)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tallyflow.synthetic.generate.spec import (
    _CODE,
    _DAY_US,
    _LONG_EVENT_ID_SHARE,
    _METRIC_WEIGHTS,
    _OFFSETS_MIN,
    _PROPERTIES,
    _PROPERTIES_SHARE,
    _Q_STYLE_P,
    _SHARED_EVENT_ID_SHARE,
    _TS_MILLIS,
    _TS_OFFSET,
    _TS_STYLE_P,
    METRICS,
    MICROS,
    UsageSpec,
    _Counts,
    time_window,
)

Array = np.ndarray[Any, Any]


def _zipf_weights(n: int, s: float = 1.1) -> Array:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    normalised: Array = weights / weights.sum()
    return normalised


def _draw_micros(rng: np.random.Generator, metric: Array) -> Array:
    """Quantities in micro-units, shaped per metric (counts, gb-hours, seconds, bytes, seats)."""
    n = len(metric)
    counts = np.minimum(rng.geometric(0.02, n), 5000).astype(np.int64) * MICROS
    gb_hours = rng.integers(0, 250 * MICROS, n, dtype=np.int64)
    seconds_ms = rng.integers(0, 3600 * 1000, n, dtype=np.int64) * 1000
    egress = np.minimum(rng.lognormal(13.0, 2.5, n), 5e9).astype(np.int64) * MICROS
    seats = rng.integers(1, 51, n, dtype=np.int64) * MICROS
    micros: Array = np.choose(metric, [counts, gb_hours, seconds_ms, egress, seats])
    micros[rng.random(n) < 0.005] = 0  # zero is a valid quantity
    return micros


def _plan(spec: UsageSpec, counts: _Counts) -> pl.DataFrame:
    """One narrow numeric row per output row, in file order (see `_file_order`)."""
    n = spec.events
    start, end = time_window(spec)
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    rng = [np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(12)]

    kind = np.concatenate(
        [
            np.full(counts.main, _CODE["clean"], dtype=np.int8),
            np.full(counts.late, _CODE["late"], dtype=np.int8),
            np.full(counts.duplicates, _CODE["duplicate"], dtype=np.int8),
            np.full(counts.conflicts, _CODE["conflicting_duplicate"], dtype=np.int8),
            *(np.full(c, _CODE[k], dtype=np.int8) for k, c in counts.bad.items()),
        ]
    )
    tenant = rng[0].choice(spec.tenants, size=n, p=_zipf_weights(spec.tenants)).astype(np.int32)
    metric = rng[1].choice(len(METRICS), size=n, p=_METRIC_WEIGHTS).astype(np.int8)
    seconds = rng[2].integers(start_s, end_s, n, dtype=np.int64)
    # Late events: earlier days (the first half of the window), in their own file.
    half = start_s + max((end_s - start_s) // 2, 1)
    late = kind == _CODE["late"]
    seconds[late] = rng[9].integers(start_s, half, int(late.sum()), dtype=np.int64)
    ts_style = rng[3].choice(4, size=n, p=_TS_STYLE_P).astype(np.int8)
    millis = np.where(ts_style == _TS_MILLIS, rng[3].integers(0, 1000, n, dtype=np.int64), 0)
    offsets = np.array(_OFFSETS_MIN, dtype=np.int16)[rng[4].integers(0, len(_OFFSETS_MIN), n)]
    props = rng[7].integers(0, len(_PROPERTIES), n).astype(np.int8)
    id_serial = rng[8].permutation(n).astype(np.int64)
    plan = {
        "row_id": np.arange(n, dtype=np.int64),
        "kind_code": kind,
        "tenant_idx": tenant,
        "metric_idx": metric,
        "instant_us": seconds * MICROS + millis * 1000,
        "ts_style": ts_style,
        "offset_min": np.where(ts_style == _TS_OFFSET, offsets, 0).astype(np.int16),
        "quantity_micros": _draw_micros(rng[5], metric),
        "q_style": rng[6].choice(4, size=n, p=_Q_STYLE_P).astype(np.int8),
        "props_idx": np.where(rng[7].random(n) < _PROPERTIES_SHARE, props, -1).astype(np.int8),
        "id_serial": id_serial,
        "long_id": rng[8].random(n) < _LONG_EVENT_ID_SHARE,
        "variant": rng[10].integers(0, 1 << 30, n, dtype=np.int32),
        "order": np.isin(kind, [_CODE["duplicate"], _CODE["conflicting_duplicate"]]).astype(
            np.int8
        ),
    }
    _share_event_ids(plan, counts, rng[10])
    _copy_originals(plan, counts, rng[11])
    return pl.DataFrame(plan)


def _share_event_ids(plan: dict[str, Array], counts: _Counts, rng: np.random.Generator) -> None:
    """Give some clean events the event id of the clean event before them (another tenant's).

    Valid: the idempotency key is (tenant_id, event_id), so both are accepted.
    """
    odd = np.arange(1, counts.main, 2)
    chosen = odd[rng.random(len(odd)) < _SHARED_EVENT_ID_SHARE * 2]
    chosen = chosen[plan["tenant_idx"][chosen] != plan["tenant_idx"][chosen - 1]]
    plan["id_serial"][chosen] = plan["id_serial"][chosen - 1]
    plan["long_id"][chosen] = plan["long_id"][chosen - 1]


_COPIED = (
    "tenant_idx",
    "metric_idx",
    "instant_us",
    "ts_style",
    "offset_min",
    "quantity_micros",
    "q_style",
    "props_idx",
    "id_serial",
    "long_id",
)


def _copy_originals(plan: dict[str, Array], counts: _Counts, rng: np.random.Generator) -> None:
    """Duplicates copy a clean event's plan row; conflicts copy it with another quantity or metric.

    NOTE: occurred_at (so the usage day and the file) stays the original's, and copies sort
    after originals within a file, so the original is always the first version read.
    """
    n_copies = counts.duplicates + counts.conflicts
    if n_copies == 0:
        return
    first = counts.main + counts.late
    originals = rng.choice(counts.main, size=n_copies, replace=n_copies > counts.main)
    rows = np.arange(first, first + n_copies)
    for name in _COPIED:
        plan[name][rows] = plan[name][originals]
    conflicts = rows[counts.duplicates :]
    change_metric = rng.random(len(conflicts)) < 0.5
    by_metric, by_quantity = conflicts[change_metric], conflicts[~change_metric]
    plan["metric_idx"][by_metric] = (plan["metric_idx"][by_metric] + 1) % len(METRICS)
    delta = rng.integers(1, 1000 * MICROS, len(by_quantity), dtype=np.int64)
    plan["quantity_micros"][by_quantity] += delta
    plan["q_style"][by_quantity] = 0


def _file_order(plan: pl.DataFrame) -> pl.DataFrame:
    """Late rows last; then by UTC day; copies after the originals of their day; by time."""
    day = pl.col("instant_us") // _DAY_US
    millis_of_day = (pl.col("instant_us") % _DAY_US) // 1000  # < 2^27
    late = (pl.col("kind_code") == _CODE["late"]).cast(pl.Int64)
    # NOTE: one Int64 key (late, day, order, time of day) sorts much faster than five.
    key = late * 2**62 + day * 2**28 + pl.col("order").cast(pl.Int64) * 2**27 + millis_of_day
    return (
        plan.with_columns(usage_day=day.cast(pl.Int32), sort_key=key)
        .sort("sort_key", "row_id")
        .drop("sort_key")
    )
