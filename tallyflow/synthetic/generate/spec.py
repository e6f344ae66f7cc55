"""The generator's vocabulary: formats, fields, kinds, shares, the spec and its summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

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
