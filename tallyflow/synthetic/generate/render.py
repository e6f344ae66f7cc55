"""Rendering: plan numbers to text (JSONL or CSV lines, Parquet cells) with cheap gathers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from tallyflow.synthetic.generate.spec import (
    _DAY_US,
    _FIRST_BAD,
    _FUTURE_DAYS,
    _ID_BASE,
    _OFFSETS_MIN,
    _PROPERTIES,
    _TS_EPOCH,
    _TS_MILLIS,
    _TS_OFFSET,
    BILLABLE_MODELS,
    BILLABLE_REGIONS,
    BILLABLE_USERS,
    FIELDS,
    KINDS,
    MAX_EVENT_ID_CHARS,
    METRICS,
    MICROS,
    REQUIRED_FIELDS,
    UsageSpec,
    event_id_prefix,
    tenant_ids,
    time_window,
)


@dataclass(frozen=True, slots=True)
class _Tables:
    """Lookup tables that turn plan numbers into text with cheap gathers."""

    id_prefix: str
    first_day: int  # days since epoch of days[0]
    days: pl.Series  # "YYYY-MM-DD"
    times: pl.Series  # "HH:MM:SS" for each second of a day
    millis: pl.Series  # ".ddd"
    offsets: dict[int, str]
    tenants: pl.Series
    metrics: pl.Series
    properties: pl.Series
    bad: dict[str, tuple[pl.Series, pl.Series]]  # kind -> (raw text, JSON token)
    billable: bool = False  # issue 13: UsageSpec.billable_properties


def _tables(spec: UsageSpec, fmt: str) -> _Tables:
    start, end = time_window(spec)
    first = start.date() - timedelta(days=1)
    n_days = (end.date() - first).days + 2
    times = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
    offsets = {}
    for minutes in _OFFSETS_MIN:
        hours, mins = divmod(abs(minutes), 60)
        offsets[minutes] = f"{'+' if minutes >= 0 else '-'}{hours:02d}:{mins:02d}"
    return _Tables(
        id_prefix=event_id_prefix(spec),
        first_day=(first - date(1970, 1, 1)).days,
        days=pl.Series([(first + timedelta(days=i)).isoformat() for i in range(n_days)]),
        times=pl.Series(times),
        millis=pl.Series([f".{i:03d}" for i in range(1000)]),
        offsets=offsets,
        tenants=pl.Series(tenant_ids(spec.tenants)),
        metrics=pl.Series(METRICS),
        properties=pl.Series(_PROPERTIES),
        bad={
            kind: (pl.Series([v[0] for v in pool]), pl.Series([v[1] for v in pool]))
            for kind, pool in _bad_pools(spec, fmt).items()
        },
        billable=spec.billable_properties,
    )


def _bad_pools(spec: UsageSpec, fmt: str) -> dict[str, list[tuple[str, str]]]:
    """Per bad kind, (raw text, JSON token) values that break exactly that one rule.

    NOTE: a blank CSV cell reads as an absent field, so CSV's bad event ids are only
    over-long ones.
    """
    year, month = spec.month.split("-")

    def s(value: str) -> tuple[str, str]:
        return value, json.dumps(value, ensure_ascii=False)

    blank_ids = [] if fmt == "csv" else [s("   "), s("\t")]

    def num(value: str) -> tuple[str, str]:
        return value, value

    return {
        "invalid_event_id": [s("e" * (MAX_EVENT_ID_CHARS + 1)), *blank_ids],
        "invalid_tenant_id": [
            s("acme corp"),
            s("-acme"),
            s("_acme"),
            s("acme/eu"),
            s("t" * 65),
            s("t\u00e9nant"),
        ],
        "invalid_metric": [
            s("API.Calls"),
            s("9lives"),
            s("api-calls"),
            s("api calls"),
            s("_private"),
            s("m" + "x" * 64),
        ],
        "invalid_quantity": [
            s("abc"),
            s("NaN"),
            s("Infinity"),
            s("1.2.3"),
            s("12abc"),
            s("1,5"),
            ("true", "true"),
        ],
        "negative_quantity": [num("-1"), s("-0.5"), num("-123.456"), s("-1000000")],
        "quantity_too_large": [
            num("1000000000001"),
            s("1000000000000.000001"),
            num("2000000000000.5"),
            s("99999999999999"),
        ],
        "invalid_timestamp": [
            s("not-a-timestamp"),
            s(f"{year}-13-01T00:00:00Z"),
            s(f"{year}-02-30T12:00:00Z"),
            s(f"{year}-{month}-05T25:30:00Z"),
            s("yesterday"),
        ],
        "malformed_row": [
            ("not json at all", "not json at all"),
            ('{"event_id": "truncated", "tenant_id": ', '{"event_id": "truncated", "tenant_id": '),
            ("[1, 2, 3]", "[1, 2, 3]"),
            ('"just a string"', '"just a string"'),
            ("42", "42"),
            ('{"event_id": "x" "tenant_id": "y"}', '{"event_id": "x" "tenant_id": "y"}'),
        ],
    }


def _decimal_text(micros: pl.Expr, *, fixed: bool) -> pl.Expr:
    """Exact decimal text of micro-units: canonical (`12.5`) or with 6 decimals (`12.500000`)."""
    whole = (micros // MICROS).cast(pl.String)
    frac6 = (micros % MICROS).cast(pl.String).str.zfill(6)
    if fixed:
        return pl.concat_str([whole, pl.lit("."), frac6])
    fraction = pl.when(micros % MICROS != 0).then(
        pl.concat_str([pl.lit("."), frac6.str.strip_chars_end("0")])
    )
    return pl.concat_str([whole, fraction.fill_null("")])


def _quoted(value: pl.Expr) -> pl.Expr:
    """A JSON string token of a value that needs no escaping."""
    return pl.concat_str([pl.lit('"'), value, pl.lit('"')])


def _render_values(plan: pl.DataFrame, t: _Tables) -> pl.DataFrame:
    """The six fields as text (`<field>`) and as JSON tokens (`<field>_tok`), valid rows' way."""
    local_us = pl.col("instant_us") + pl.col("offset_min").cast(pl.Int64) * (60 * MICROS)
    local_s = local_us // MICROS
    style = pl.col("ts_style")
    event_id = pl.concat_str(
        [pl.lit(t.id_prefix), (pl.col("id_serial") + _ID_BASE).cast(pl.String)]
    )
    frame = plan.with_columns(
        stamp=pl.concat_str(
            [
                pl.lit(t.days).gather(local_s // 86_400 - t.first_day),
                pl.lit("T"),
                pl.lit(t.times).gather(local_s % 86_400),
            ]
        ),
        event_id=pl.when(pl.col("long_id"))
        .then(event_id.str.pad_end(MAX_EVENT_ID_CHARS, "x"))
        .otherwise(event_id),
        tenant_id=pl.lit(t.tenants).gather(pl.col("tenant_idx")),
        metric=pl.lit(t.metrics).gather(pl.col("metric_idx")),
        whole=(pl.col("quantity_micros") // MICROS).cast(pl.String),
        frac6=(pl.col("quantity_micros") % MICROS).cast(pl.String).str.zfill(6),
        properties=pl.when(pl.col("props_idx") >= 0).then(
            pl.lit(t.properties).gather(pl.col("props_idx").clip(0).cast(pl.Int64))
        ),
    )
    suffix = (
        pl.when(style == _TS_MILLIS)
        .then(
            pl.concat_str(
                [pl.lit(t.millis).gather((pl.col("instant_us") // 1000) % 1000), pl.lit("Z")]
            )
        )
        .when(style == _TS_OFFSET)
        .then(pl.col("offset_min").replace_strict(t.offsets, return_dtype=pl.String))
        .otherwise(pl.lit("Z"))
    )
    fraction = pl.when(pl.col("quantity_micros") % MICROS != 0).then(
        pl.concat_str([pl.lit("."), pl.col("frac6").str.strip_chars_end("0")])
    )
    frame = frame.with_columns(
        occurred_at=pl.when(style == _TS_EPOCH)
        .then((pl.col("instant_us") // MICROS).cast(pl.String))
        .otherwise(pl.concat_str([pl.col("stamp"), suffix])),
        quantity=pl.when(pl.col("q_style") >= 2)
        .then(pl.concat_str([pl.col("whole"), pl.lit("."), pl.col("frac6")]))
        .otherwise(pl.concat_str([pl.col("whole"), fraction.fill_null("")])),
    )
    return frame.with_columns(
        event_id_tok=_quoted(pl.col("event_id")),
        tenant_id_tok=_quoted(pl.col("tenant_id")),
        metric_tok=_quoted(pl.col("metric")),
        quantity_tok=pl.when(pl.col("q_style").is_in([0, 3]))
        .then(pl.col("quantity"))
        .otherwise(_quoted(pl.col("quantity"))),
        occurred_at_tok=pl.when(style == _TS_EPOCH)
        .then(pl.col("occurred_at"))
        .otherwise(_quoted(pl.col("occurred_at"))),
        properties_tok=pl.col("properties"),
    ).drop("stamp", "whole", "frac6")


def _billable_properties(frame: pl.DataFrame) -> pl.DataFrame:
    """Issue 13: every row's properties for billable metrics, drawn from `variant`."""
    v = pl.col("variant").cast(pl.Int64)
    text = pl.concat_str(
        [
            pl.lit('{"model":"'),
            pl.lit(pl.Series(BILLABLE_MODELS)).gather(v % len(BILLABLE_MODELS)),
            pl.lit('","region":"'),
            pl.lit(pl.Series(BILLABLE_REGIONS)).gather((v // 20) % len(BILLABLE_REGIONS)),
            pl.lit('","user_id":"u'),
            ((v // 80) % BILLABLE_USERS).cast(pl.String),
            pl.lit('","latency_ms":'),
            (((v // 7) % 997) + 3).cast(pl.String),
            pl.lit(',"level":'),
            ((v // 13) % 500).cast(pl.String),
            pl.lit("}"),
        ]
    )
    return frame.with_columns(properties=text, properties_tok=text)


def _break_values(frame: pl.DataFrame, t: _Tables) -> pl.DataFrame:
    """Bad rows only: break exactly one rule in each; the other fields stay valid."""
    kind = pl.lit(pl.Series(KINDS)).gather(pl.col("kind_code").cast(pl.Int64))
    frame = frame.with_columns(kind=kind)
    targets = {
        "invalid_event_id": "event_id",
        "invalid_tenant_id": "tenant_id",
        "invalid_metric": "metric",
        "invalid_quantity": "quantity",
        "negative_quantity": "quantity",
        "quantity_too_large": "quantity",
        "invalid_timestamp": "occurred_at",
    }
    updates: dict[str, pl.Expr] = {}
    for bad_kind, target in targets.items():
        raw_pool, tok_pool = t.bad[bad_kind]
        pick = pl.col("variant") % len(raw_pool)
        is_kind = pl.col("kind") == bad_kind
        raw = updates.get(target, pl.col(target))
        tok = updates.get(f"{target}_tok", pl.col(f"{target}_tok"))
        updates[target] = pl.when(is_kind).then(pl.lit(raw_pool).gather(pick)).otherwise(raw)
        updates[f"{target}_tok"] = (
            pl.when(is_kind).then(pl.lit(tok_pool).gather(pick)).otherwise(tok)
        )
    frame = frame.with_columns(**updates)

    # Naive: the row's own UTC wall time without an offset. Future: 50 years ahead.
    utc = pl.from_epoch("instant_us", "us")
    naive = (
        pl.when(pl.col("variant") % 2 == 0)
        .then(utc.dt.strftime("%Y-%m-%dT%H:%M:%S"))
        .otherwise(utc.dt.strftime("%Y-%m-%dT%H:%M:%S%.3f"))
    )
    future_us = pl.col("instant_us") + _FUTURE_DAYS * _DAY_US
    future_epoch = (future_us // MICROS).cast(pl.String)
    future_text = pl.concat_str(
        [pl.from_epoch(future_us, "us").dt.strftime("%Y-%m-%dT%H:%M:%S"), pl.lit("Z")]
    )
    as_epoch = pl.col("variant") % 3 == 0
    is_naive = pl.col("kind") == "naive_timestamp"
    is_future = pl.col("kind") == "future_timestamp"
    frame = frame.with_columns(
        occurred_at=pl.when(is_naive)
        .then(naive)
        .when(is_future)
        .then(pl.when(as_epoch).then(future_epoch).otherwise(future_text))
        .otherwise(pl.col("occurred_at")),
        occurred_at_tok=pl.when(is_naive)
        .then(_quoted(naive))
        .when(is_future)
        .then(pl.when(as_epoch).then(future_epoch).otherwise(_quoted(future_text)))
        .otherwise(pl.col("occurred_at_tok")),
    )
    # Missing field: one required field left out (JSON) or empty (CSV) or null (Parquet).
    missing = pl.col("kind") == "missing_field"
    dropped = pl.col("variant") % len(REQUIRED_FIELDS)
    frame = frame.with_columns(
        *(
            pl.when(missing & (dropped == i)).then(None).otherwise(pl.col(name)).alias(name)
            for i, f in enumerate(REQUIRED_FIELDS)
            for name in (f, f"{f}_tok")
        )
    )
    raw_pool, _ = t.bad["malformed_row"]
    return frame.with_columns(
        malformed=pl.when(pl.col("kind") == "malformed_row").then(
            pl.lit(raw_pool).gather(pl.col("variant") % len(raw_pool))
        )
    ).drop("kind")


def _json_line(*, general: bool) -> pl.Expr:
    """The JSONL text of a row; `general` handles absent fields and malformed rows."""
    if not general:
        props = pl.when(pl.col("properties_tok").is_not_null()).then(
            pl.concat_str([pl.lit(',"properties":'), pl.col("properties_tok")])
        )
        return pl.concat_str(
            [
                pl.lit('{"event_id":'),
                pl.col("event_id_tok"),
                pl.lit(',"tenant_id":'),
                pl.col("tenant_id_tok"),
                pl.lit(',"metric":'),
                pl.col("metric_tok"),
                pl.lit(',"quantity":'),
                pl.col("quantity_tok"),
                pl.lit(',"occurred_at":'),
                pl.col("occurred_at_tok"),
                props.fill_null(""),
                pl.lit("}"),
            ]
        )
    pieces = [
        pl.when(pl.col(f"{f}_tok").is_not_null())
        .then(pl.concat_str([pl.lit(f',"{f}":'), pl.col(f"{f}_tok")]))
        .otherwise(pl.lit(""))
        for f in FIELDS
    ]
    line = pl.concat_str([pl.lit("{"), pl.concat_str(pieces).str.slice(1), pl.lit("}")])
    return pl.coalesce(pl.col("malformed"), line)


def _csv_cell(value: pl.Expr) -> pl.Expr:
    """RFC 4180 cell: empty for null, quoted (quotes doubled) when it holds , " or a line break."""
    needs = value.str.contains(r'[",\r\n]') | value.str.starts_with(" ") | value.str.ends_with(" ")
    quoted = pl.concat_str(
        [pl.lit('"'), value.str.replace_all('"', '""', literal=True), pl.lit('"')]
    )
    return pl.when(value.is_null()).then(pl.lit("")).when(needs).then(quoted).otherwise(value)


def _csv_line(*, general: bool) -> pl.Expr:
    cells = [_csv_cell(pl.col(f)) if general or f == "properties" else pl.col(f) for f in FIELDS]
    return pl.concat_str(cells, separator=",")


def _render(plan: pl.DataFrame, t: _Tables, fmt: str) -> pl.DataFrame:
    """Plan rows -> field text plus the row's line (`line`) for the format, in plan order."""
    is_bad = pl.col("kind_code") >= _FIRST_BAD
    good = _render_values(plan.filter(~is_bad), t)
    if t.billable:  # issue 13
        good = _billable_properties(good)
    bad = _break_values(_render_values(plan.filter(is_bad), t), t)
    if fmt in ("jsonl", "ndjson"):
        good = good.with_columns(line=_json_line(general=False))
        bad = bad.with_columns(line=_json_line(general=True))
    elif fmt == "csv":
        good = good.with_columns(line=_csv_line(general=False))
        bad = bad.with_columns(line=_csv_line(general=True))
    else:
        good = good.with_columns(line=pl.lit(None, pl.String))
        bad = bad.with_columns(line=pl.lit(None, pl.String))
    if bad.height == 0:
        return good
    columns = [*plan.columns, *FIELDS, "line"]
    return pl.concat([good.select(columns), bad.select(columns)]).sort("position")
