"""Deterministic synthetic usage logs: the demo's, the tests' and the benchmarks' input.

Plain typed functions, no Prefect. Every column is built with numpy / Polars vector
operations (no Python loop per event): 2,000,000 events take a few seconds.

What a run produces (all from one seed; byte-identical on a rerun for a past month):

- tenants with Zipf-like volumes, five metrics, a month of UTC instants rendered as
  RFC 3339 with `Z`, with offsets (some crossing UTC midnight or the month's edges) or
  as epoch seconds; quantities as JSON numbers or numeric strings with up to 6
  decimals; optional `properties` objects; some event ids shared across tenants and
  some exactly 128 characters long (both valid);
- optional shares of exact duplicates and conflicting duplicates (always after their
  original in file order), late events (a separate file dated after the rest, for
  earlier days) and each kind of bad row of the contract (section 2);
- an oracle: per (tenant_id, metric, usage_date) the exact sum (decimal text), count,
  max and first/last occurred_at of the accepted events, computed from the generator's
  own integer micro-units, never by the ingest code.

How: a narrow numeric plan of every row is drawn first (tenant, metric, instant,
micro-units, rendering styles, kind); copies copy plan rows, so rendering the plan as
text, file by file, gives byte-identical duplicates. Memory stays near the plan's size
(about 50 bytes a row) plus one file's text.

`events` is the total number of rows written (bad, duplicate and late rows included).
`now` only matters for the current month: accepted instants stop at the start of the
current hour, so none is in the future at ingest.
"""

from __future__ import annotations

import gzip as gzip_module
import io
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from models.period import BillingPeriod
from tallyflow.core.clock import utc_now
from tallyflow.core.errors import InvalidInput

Format = Literal["jsonl", "ndjson", "csv", "parquet"]
FilesBy = Literal["day", "rows"]

FORMATS: tuple[str, ...] = ("jsonl", "ndjson", "csv", "parquet")
FIELDS: tuple[str, ...] = (
    "event_id",
    "tenant_id",
    "metric",
    "quantity",
    "occurred_at",
    "properties",
)
REQUIRED_FIELDS: tuple[str, ...] = FIELDS[:5]

METRICS: tuple[str, ...] = (
    "api.calls",
    "storage.gb_hours",
    "compute.seconds",
    "egress.bytes",
    "seats",
)
_METRIC_WEIGHTS = (0.45, 0.12, 0.23, 0.15, 0.05)

# The contract's row-level rejection reasons (section 2) a generator can produce.
BAD_KINDS: tuple[str, ...] = (
    "invalid_event_id",
    "invalid_tenant_id",
    "invalid_metric",
    "invalid_quantity",
    "negative_quantity",
    "quantity_too_large",
    "invalid_timestamp",
    "naive_timestamp",
    "future_timestamp",
    "missing_field",
    "malformed_row",
)
ACCEPTED_KINDS: tuple[str, ...] = ("clean", "late")
KINDS: tuple[str, ...] = ("clean", "late", "duplicate", "conflicting_duplicate", *BAD_KINDS)
_CODE = {kind: code for code, kind in enumerate(KINDS)}
_FIRST_BAD = _CODE[BAD_KINDS[0]]
# NOTE: CSV and Parquet hold no "line that is not a JSON object": a short CSV line is
# read as empty cells (missing_field) and a Parquet file is typed.
_JSON_ONLY_KINDS = frozenset({"malformed_row"})

MICROS = 1_000_000
_DAY_US = 86_400 * MICROS
MAX_EVENT_ID_CHARS = 128
_ID_BASE = 10**11  # event ids "<prefix>1000...": fixed width without zero-padding work

# Offsets in minutes; with these, a share of local dates differs from the UTC date.
_OFFSETS_MIN = (330, -480, 540, -300, 0, 60, -210, 345, 600, -600, 840, -720, 120, -420)

_PROPERTIES = (
    '{"region":"eu-west-1"}',
    '{"region":"us-east-1","sku":"std-2"}',
    '{"source":"api","retries":2,"cached":false}',
    '{"k8s":{"namespace":"prod","pod":"api-7f9c"},"zone":"b"}',
    '{"label":"caf\u00e9 \u2615, \\"quoted\\""}',
    '{"tags":["batch","nightly"],"weight":0.25}',
)
_PROPERTIES_SHARE = 0.3

# Issue 13: properties for billable metrics (spec.billable_properties): 20 models, 4 regions,
# 100,000 user ids, a latency in ms and a level (a gauge such as GB stored).
BILLABLE_MODELS: tuple[str, ...] = tuple(f"model-{i:02d}" for i in range(1, 21))
BILLABLE_REGIONS: tuple[str, ...] = ("eu-west", "eu-central", "us-east", "ap-south")
BILLABLE_USERS = 100_000
_BILLABLE_SAMPLE = '{"model":"m","region":"r","user_id":"u","latency_ms":1,"level":1}'

_TENANT_STEMS = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "Soylent",
    "9bit",
)
_TENANT_SUFFIXES = ("", ".eu", ":prod", "_sandbox", "-us")

# Shares of each rendering style (drawn from the seed).
_TS_STYLE_P = (0.40, 0.10, 0.35, 0.15)  # Z, Z with milliseconds, offset, epoch seconds
_TS_Z, _TS_MILLIS, _TS_OFFSET, _TS_EPOCH = range(4)
_Q_STYLE_P = (0.55, 0.30, 0.10, 0.05)  # number, string, string "x.000000", number "x.000000"
_SHARED_EVENT_ID_SHARE = 0.01
_LONG_EVENT_ID_SHARE = 0.02
_FUTURE_DAYS = 50 * 365
_LATE_FILE_KEY = 1 << 40


class GenerateError(ValueError):
    """A bad generator parameter (the CLI maps it to exit code 2)."""


@dataclass(frozen=True, slots=True)
class UsageSpec:
    """What to generate. Shares are fractions of `events` (the total number of rows)."""

    month: str
    tenants: int = 20
    events: int = 10_000
    seed: int = 0
    duplicates: float = 0.0
    conflicts: float = 0.0
    late: float = 0.0
    bad: float = 0.0
    bad_kinds: tuple[str, ...] = BAD_KINDS
    now: datetime | None = None
    id_prefix: str | None = None
    # NOTE (issue 13): every event gets the properties billable metrics read (model,
    # region, user_id, latency_ms, level); off by default, so existing seeds are unchanged.
    billable_properties: bool = False

    def __post_init__(self) -> None:
        parse_month(self.month)
        if self.id_prefix is not None and not 1 <= len(self.id_prefix) <= 64:
            raise GenerateError("id_prefix must have 1 to 64 characters")
        if self.tenants < 1:
            raise GenerateError(f"tenants must be >= 1, got {self.tenants}")
        if self.events < 0:
            raise GenerateError(f"events must be >= 0, got {self.events}")
        shares = {
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "late": self.late,
            "bad": self.bad,
        }
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise GenerateError(f"{name} must be a share between 0 and 1, got {share}")
        if sum(shares.values()) > 1.0 + 1e-9:
            raise GenerateError("duplicates + conflicts + late + bad must not exceed 1")
        unknown = sorted(set(self.bad_kinds) - set(BAD_KINDS))
        if unknown:
            raise GenerateError(f"unknown bad kinds: {', '.join(unknown)}")
        if self.now is not None and self.now.tzinfo is None:
            raise GenerateError("now must be timezone-aware")


@dataclass(frozen=True, slots=True)
class GenerateSummary:
    """What `generate_usage` wrote, and what an ingest of all its files must report."""

    out_dir: str
    format: str
    gzip: bool
    files: tuple[str, ...]
    late_files: tuple[str, ...]
    rows: int
    rows_by_kind: dict[str, int]
    accepted: int
    duplicates: int
    rejected: int
    rejected_by_reason: dict[str, int]
    days: tuple[str, ...]
    oracle: str | None
    seconds: float = field(compare=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Counts:
    """Row counts per kind, derived from a spec."""

    main: int
    late: int
    duplicates: int
    conflicts: int
    bad: dict[str, int]


def parse_month(month: str) -> tuple[date, date]:
    """`YYYY-MM` -> (its first day, the first day of the next month)."""
    try:
        return BillingPeriod.parse(month).bounds
    except InvalidInput:
        raise GenerateError(f"month must be YYYY-MM, got {month!r}") from None


def time_window(spec: UsageSpec) -> tuple[datetime, datetime]:
    """[start, end) of accepted instants: the month, cut at the current hour if need be."""
    first, after = parse_month(spec.month)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(after.year, after.month, after.day, tzinfo=UTC)
    now = (spec.now or utc_now()).astimezone(UTC)
    end = min(end, now.replace(minute=0, second=0, microsecond=0))
    if end <= start:
        raise GenerateError(f"month {spec.month} has no hour in the past yet")
    return start, end


def _counts(spec: UsageSpec) -> _Counts:
    n = spec.events
    late, dups, conflicts = (round(n * s) for s in (spec.late, spec.duplicates, spec.conflicts))
    n_bad = round(n * spec.bad) if spec.bad_kinds else 0
    main = n - late - dups - conflicts - n_bad
    if main < 0:  # rounding of shares summing to 1
        n_bad += main
        main = 0
    if (dups or conflicts) and main == 0:
        raise GenerateError("duplicates and conflicts need some clean events to copy")
    kinds = spec.bad_kinds
    bad = {k: n_bad // len(kinds) + (i < n_bad % len(kinds)) for i, k in enumerate(kinds)}
    return _Counts(main=main, late=late, duplicates=dups, conflicts=conflicts, bad=bad)


def event_id_prefix(spec: UsageSpec) -> str:
    """Event ids start with this: by default month and seed, so that specs for other
    months or seeds never reuse a (tenant_id, event_id) key (which would be a conflict)."""
    return spec.id_prefix or f"evt-{spec.month.replace('-', '')}-s{spec.seed}-"


def tenant_ids(n: int) -> list[str]:
    """Stable, valid tenant ids by volume rank (rank 0 is the biggest tenant)."""
    out = []
    for rank in range(n):
        stem = _TENANT_STEMS[rank % len(_TENANT_STEMS)]
        suffix = _TENANT_SUFFIXES[(rank // len(_TENANT_STEMS)) % len(_TENANT_SUFFIXES)]
        out.append(f"{stem}-{rank:04d}{suffix}")
    return out


# --------------------------------------------------------------------------- the plan

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


# ---------------------------------------------------------------------- rendering


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


# ------------------------------------------------------------------- public API


def _sorted_plan(spec: UsageSpec) -> pl.DataFrame:
    return _file_order(_plan(spec, _counts(spec))).with_row_index("position")


def generate_events_frame(spec: UsageSpec, *, format: Format = "jsonl") -> pl.DataFrame:
    """All rows of a spec in file order, for benchmarks that write their own files.

    Columns: the six event fields as text (null = absent; `quantity` and `occurred_at`
    as they appear in CSV), `line` (the row's JSONL or CSV text; null for Parquet),
    `kind` (clean, late, duplicate, conflicting_duplicate or a bad reason),
    `usage_date` / `occurred_at_utc` (the row's base UTC instant) and `quantity_micros`
    (Int64, set on accepted rows only).
    """
    spec = _for_format(spec, format)
    rendered = _render(_sorted_plan(spec), _tables(spec, format), format)
    return _public_columns(rendered)


def _public_columns(rendered: pl.DataFrame) -> pl.DataFrame:
    accepted = pl.col("kind").is_in(ACCEPTED_KINDS)
    return rendered.with_columns(
        kind=pl.lit(pl.Series(KINDS)).gather(pl.col("kind_code").cast(pl.Int64))
    ).select(
        *FIELDS,
        "line",
        "kind",
        usage_date=pl.from_epoch("instant_us", "us").dt.date(),
        occurred_at_utc=pl.from_epoch("instant_us", "us").dt.replace_time_zone("UTC"),
        quantity_micros=pl.when(accepted).then(pl.col("quantity_micros")),
    )


def _for_format(spec: UsageSpec, fmt: str) -> UsageSpec:
    if fmt not in FORMATS:
        raise GenerateError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt in ("csv", "parquet") and _JSON_ONLY_KINDS & set(spec.bad_kinds):
        kinds = tuple(k for k in spec.bad_kinds if k not in _JSON_ONLY_KINDS)
        return replace(spec, bad_kinds=kinds)
    return spec


def compute_oracle(plan_or_frame: pl.DataFrame, spec: UsageSpec | None = None) -> pl.DataFrame:
    """Expected usage_daily rows of the accepted events, exact.

    Takes a frame from `generate_events_frame` (or, with its spec, an internal plan);
    never the ingest code. Sums run on Int128 micro-units, so no total overflows; the
    quantities are decimal text with 6 places.
    """
    if "kind_code" in plan_or_frame.columns:
        assert spec is not None
        t = _tables(spec, "jsonl")
        accepted = plan_or_frame.filter(
            pl.col("kind_code").is_in([_CODE[k] for k in ACCEPTED_KINDS])
        ).select(
            tenant_id=pl.lit(t.tenants).gather(pl.col("tenant_idx")),
            metric=pl.lit(t.metrics).gather(pl.col("metric_idx")),
            usage_date=pl.from_epoch("instant_us", "us").dt.date(),
            occurred_at_utc=pl.from_epoch("instant_us", "us").dt.replace_time_zone("UTC"),
            quantity_micros="quantity_micros",
        )
    else:
        accepted = plan_or_frame.filter(pl.col("kind").is_in(ACCEPTED_KINDS))
    grouped = (
        accepted.group_by("tenant_id", "metric", "usage_date")
        .agg(
            sum_micros=pl.col("quantity_micros").cast(pl.Int128).sum(),
            event_count=pl.len().cast(pl.Int64),
            max_micros=pl.col("quantity_micros").max().cast(pl.Int128),
            first_occurred_at=pl.col("occurred_at_utc").min(),
            last_occurred_at=pl.col("occurred_at_utc").max(),
        )
        .sort("tenant_id", "metric", "usage_date")
    )
    return grouped.select(
        "tenant_id",
        "metric",
        "usage_date",
        quantity_sum=_decimal_text(pl.col("sum_micros"), fixed=True),
        event_count="event_count",
        quantity_max=_decimal_text(pl.col("max_micros"), fixed=True),
        first_occurred_at="first_occurred_at",
        last_occurred_at="last_occurred_at",
    )


def write_oracle(oracle: pl.DataFrame, path: Path) -> None:
    """Parquet when the name ends in .parquet, else CSV (decimal text either way)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        oracle.write_parquet(path)
    else:
        oracle.write_csv(path)


def read_oracle(path: Path) -> pl.DataFrame:
    """An oracle file back as a frame (quantities stay decimal text)."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    return pl.read_csv(
        path,
        schema_overrides={
            "tenant_id": pl.String,
            "metric": pl.String,
            "quantity_sum": pl.String,
            "quantity_max": pl.String,
        },
    ).with_columns(
        pl.col("usage_date").str.to_date(),
        pl.col("first_occurred_at", "last_occurred_at").str.to_datetime(time_zone="UTC"),
    )


def oracle_sums(oracle: pl.DataFrame) -> dict[tuple[str, str, date], Decimal]:
    """{(tenant_id, metric, usage_date): exact quantity_sum} of an oracle frame."""
    rows = oracle.select("tenant_id", "metric", "usage_date", "quantity_sum").iter_rows()
    return {(t, m, d): Decimal(q) for t, m, d, q in rows}


def _extension(fmt: str, gzip: bool) -> str:
    return f".{fmt}" + (".gz" if gzip and fmt != "parquet" else "")


def _write_file(part: pl.DataFrame, path: Path, fmt: str, gzip: bool) -> None:
    """Write one file atomically (temp name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        # NOTE: properties as a Struct column (a typed Parquet file's object), not JSON text.
        props_type = pl.Series(_PROPERTIES).str.json_decode().dtype
        if part.get_column("properties").drop_nulls().str.starts_with('{"model"').any():
            props_type = pl.Series([_BILLABLE_SAMPLE]).str.json_decode().dtype  # issue 13
        props = pl.col("properties").str.json_decode(props_type)
        part.select(*FIELDS[:-1], props).write_parquet(tmp)
        tmp.replace(path)
        return
    buffer = io.BytesIO()
    if fmt == "csv":
        buffer.write((",".join(FIELDS) + "\n").encode())
    part.select("line").write_csv(buffer, include_header=False, quote_style="never")
    with open(tmp, "wb") as out:
        if gzip:
            # NOTE: mtime=0 and no name in the header: same seed, same bytes, same sha256.
            with gzip_module.GzipFile(
                filename="", mode="wb", fileobj=out, mtime=0, compresslevel=1
            ) as gz:
                gz.write(buffer.getbuffer())
        else:
            out.write(buffer.getbuffer())
    tmp.replace(path)


def _file_slices(
    plan: pl.DataFrame, files_by: str, rows_per_file: int
) -> Iterator[tuple[int, int, int]]:
    """(file key, offset, length) of each output file, in order, over the sorted plan."""
    is_late = pl.col("kind_code") == _CODE["late"]
    if files_by == "day":
        key = pl.when(is_late).then(_LATE_FILE_KEY).otherwise(pl.col("usage_day").cast(pl.Int64))
    else:
        key = pl.when(is_late).then(_LATE_FILE_KEY).otherwise(pl.col("position") // rows_per_file)
    runs = plan.select(key.alias("key").rle()).unnest("key")
    offset = 0
    for length, value in runs.select("len", "value").iter_rows():
        yield int(value), offset, int(length)
        offset += int(length)


def generate_usage(
    out_dir: Path,
    spec: UsageSpec,
    *,
    format: Format = "jsonl",
    gzip: bool = False,
    files_by: FilesBy = "day",
    rows_per_file: int = 100_000,
    oracle_path: Path | None = None,
) -> GenerateSummary:
    """Write the usage files of a spec into out_dir (and its oracle when asked)."""
    began = time.perf_counter()
    spec = _for_format(spec, format)
    if files_by not in ("day", "rows"):
        raise GenerateError(f"files_by must be day or rows, got {files_by!r}")
    if rows_per_file < 1:
        raise GenerateError(f"rows_per_file must be >= 1, got {rows_per_file}")
    plan = _sorted_plan(spec)
    tables = _tables(spec, format)
    _, window_end = time_window(spec)
    ext = _extension(format, gzip)
    out_dir.mkdir(parents=True, exist_ok=True)

    files: list[str] = []
    late_files: list[str] = []
    for key, offset, length in _file_slices(plan, files_by, rows_per_file):
        if key == _LATE_FILE_KEY:
            name = f"usage-{window_end.date().isoformat()}-late"
        elif files_by == "day":
            name = f"usage-{date(1970, 1, 1) + timedelta(days=key)}"
        else:
            name = f"usage-{spec.month}-part-{key:05d}"
        path = out_dir / f"{name}{ext}"
        _write_file(_render(plan.slice(offset, length), tables, format), path, format, gzip)
        (late_files if key == _LATE_FILE_KEY else files).append(str(path))

    counts = dict.fromkeys(KINDS, 0)
    for code, count in plan.group_by("kind_code").len().iter_rows():
        counts[KINDS[code]] = count
    oracle_file: str | None = None
    if oracle_path is not None:
        write_oracle(compute_oracle(plan, spec), oracle_path)
        oracle_file = str(oracle_path)
    rejected_by_reason = {k: counts[k] for k in ("conflicting_duplicate", *BAD_KINDS) if counts[k]}
    accepted_days = (
        plan.filter(pl.col("kind_code") <= _CODE["late"])["usage_day"].unique().sort().to_list()
    )
    return GenerateSummary(
        out_dir=str(out_dir),
        format=format,
        gzip=gzip and format != "parquet",
        files=tuple(files + late_files),
        late_files=tuple(late_files),
        rows=plan.height,
        rows_by_kind=counts,
        accepted=counts["clean"] + counts["late"],
        duplicates=counts["duplicate"],
        rejected=sum(rejected_by_reason.values()),
        rejected_by_reason=rejected_by_reason,
        days=tuple((date(1970, 1, 1) + timedelta(days=d)).isoformat() for d in accepted_days),
        oracle=oracle_file,
        seconds=round(time.perf_counter() - began, 3),
    )
