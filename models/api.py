"""API schemas (pydantic): requests are validated strictly, money and quantities are decimal
strings in JSON (never floats)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from models.decimals import DecimalRefused, exact_decimal
from models.identifiers import METRIC_PATTERN, PLAN_CODE_PATTERN, TENANT_ID_PATTERN
from models.money import currency_problem
from tallyflow.core.errors import InvalidInput


def _to_decimal(value: object) -> object:
    """Accept a decimal string or a JSON number taken by its text, never a binary float
    (the rule: models.decimals.exact_decimal); other types are left to pydantic."""
    if not isinstance(value, bool | str | int | float):
        return value
    try:
        return exact_decimal(value)
    except DecimalRefused as exc:
        if exc.kind == "type":
            raise ValueError("must be a decimal number, not a boolean") from None
        if exc.kind == "infinite":
            raise ValueError("must be a finite decimal number") from None
        raise ValueError(f"{value!r} is not a decimal number") from None


def _decimal_text(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing noise: 1E+3 -> '1000', 2.500000 -> '2.5'."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def iso_currency(value: str) -> str:
    """Pydantic's side of the currency rule (models.money.currency_problem): ValueError."""
    problem = currency_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} {problem}")
    return value


DecimalIn = Annotated[Decimal, BeforeValidator(_to_decimal)]
# NOTE: bounded so every value fits its NUMERIC column (quantities NUMERIC(38,6), money
# NUMERIC(24,6)) and at most 6 decimals, which the database would otherwise round silently.
MAX_AMOUNT = Decimal("1e15")
NonNegative = Annotated[
    Decimal, BeforeValidator(_to_decimal), Field(ge=0, le=MAX_AMOUNT, decimal_places=6)
]
DecimalOut = Annotated[Decimal, PlainSerializer(_decimal_text, return_type=str, when_used="json")]

Metric = Annotated[str, Field(pattern=METRIC_PATTERN, examples=["api_calls"])]
TenantId = Annotated[str, Field(pattern=TENANT_ID_PATTERN)]
Aggregation = Literal["sum", "count", "max"]
# NOTE (issue 13): a quota may name the aggregations of a billable metric too; which ones a
# quota may use is checked against the metrics (services.metrics.plans.check_plan_quotas).
QuotaAggregation = Literal[
    "sum", "count", "max", "unique_count", "latest", "time_weighted_sum", "percentile"
]
Enforcement = Literal["hard", "soft"]

# NOTE: the calendar's first and last months have no neighbouring month (a period end, a
# proration window, "the month before"): dates there are refused (422) rather than
# overflowing into a server error. Same bounds as services/usage.py's summary.
FIRST_DAY = dt.date(1, 2, 1)
LAST_DAY = dt.date(9999, 11, 30)


def _inside_calendar(value: dt.date) -> dt.date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"date {value} is out of range ({FIRST_DAY}..{LAST_DAY})")
    return value


CalendarDate = Annotated[dt.date, AfterValidator(_inside_calendar)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- plans --------------------------------------------------------------------------


class QuotaIn(Strict):
    metric: Metric
    aggregation: QuotaAggregation = "sum"
    included: NonNegative = Decimal(0)
    limit: NonNegative | None = None
    enforcement: Enforcement = "hard"
    pricing: dict[str, Any] = Field(
        examples=[{"model": "per_unit", "unit_price": "0.002"}],
        description="per_unit, graduated, volume, package (contract section 4) or matrix"
        " (a grouped billable metric, section 4a)",
    )

    @field_validator("pricing")
    @classmethod
    def _pricing_is_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        # NOTE: the one definition of the pricing rules (models.pricing) validates here, so a
        # stored plan is always one the invoice run can price.
        from models.pricing.registry import parse_pricing

        try:
            return parse_pricing(value).to_json()
        except InvalidInput as exc:
            raise ValueError(exc.message) from None


class PlanIn(Strict):
    code: Annotated[str, Field(pattern=PLAN_CODE_PATTERN, examples=["pro"])]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    currency: Annotated[str, Field(examples=["USD"])]
    base_fee: NonNegative
    minimum_commitment: NonNegative | None = Field(
        default=None, description="Money per calendar month, prorated by days like base_fee"
    )
    quotas: list[QuotaIn] = Field(default_factory=list)

    @field_validator("currency")
    @classmethod
    def _currency_is_iso(cls, value: str) -> str:
        return iso_currency(value)

    @field_validator("quotas")
    @classmethod
    def _one_quota_per_metric(cls, value: list[QuotaIn]) -> list[QuotaIn]:
        seen: set[str] = set()
        for quota in value:
            if quota.metric in seen:
                raise ValueError(f"metric {quota.metric!r} appears more than once")
            seen.add(quota.metric)
        return value


class QuotaOut(BaseModel):
    metric: str
    aggregation: str
    included: DecimalOut
    limit: DecimalOut | None
    enforcement: str
    pricing: dict[str, Any]


class PlanOut(BaseModel):
    id: int
    code: str
    name: str
    currency: str
    base_fee: DecimalOut
    minimum_commitment: DecimalOut | None = None
    quotas: list[QuotaOut]
    created_at: dt.datetime


# --- subscriptions ------------------------------------------------------------------


class SubscriptionIn(Strict):
    plan_code: Annotated[str, Field(min_length=1)]
    starts_on: CalendarDate
    ends_on: CalendarDate | None = None

    @model_validator(mode="after")
    def _dates_ordered(self) -> SubscriptionIn:
        if self.ends_on is not None and self.ends_on <= self.starts_on:
            raise ValueError("ends_on must be after starts_on (ends_on is exclusive)")
        return self


class SubscriptionOut(BaseModel):
    id: int
    tenant_id: str
    plan_code: str
    starts_on: dt.date
    ends_on: dt.date | None
    created_at: dt.datetime
    updated_at: dt.datetime


# --- quota overrides ----------------------------------------------------------------


class OverrideIn(Strict):
    metric: Metric
    limit: NonNegative | None = None
    included: NonNegative | None = None
    enforcement: Enforcement | None = None
    effective_from: CalendarDate | None = None
    effective_to: CalendarDate | None = None

    @model_validator(mode="after")
    def _dates_ordered(self) -> OverrideIn:
        if (
            self.effective_from is not None
            and self.effective_to is not None
            and self.effective_to <= self.effective_from
        ):
            raise ValueError("effective_to must be after effective_from (it is exclusive)")
        return self


class OverridesIn(Strict):
    overrides: list[OverrideIn]

    @field_validator("overrides")
    @classmethod
    def _windows_do_not_overlap(cls, value: list[OverrideIn]) -> list[OverrideIn]:
        by_metric: dict[str, list[OverrideIn]] = {}
        for item in value:
            by_metric.setdefault(item.metric, []).append(item)
        for metric, items in by_metric.items():
            spans = sorted(
                (o.effective_from or dt.date.min, o.effective_to or dt.date.max) for o in items
            )
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError(f"overrides of metric {metric!r} have overlapping windows")
        return value


class OverrideOut(BaseModel):
    id: int
    tenant_id: str
    metric: str
    limit: DecimalOut | None
    included: DecimalOut | None
    enforcement: str | None
    effective_from: dt.date | None
    effective_to: dt.date | None
    created_at: dt.datetime


# --- quotas -------------------------------------------------------------------------


class EffectiveQuotaOut(BaseModel):
    metric: str
    aggregation: str
    included: DecimalOut
    limit: DecimalOut | None
    enforcement: str
    source: str
    plan_code: str
    used: DecimalOut
    remaining: DecimalOut | None
    period_start: dt.date
    period_end: dt.date
    as_of: dt.datetime | None


class QuotaCheckIn(Strict):
    metric: Metric
    quantity: NonNegative = Decimal(1)


class QuotaCheckOut(BaseModel):
    allowed: bool
    reason: Literal[
        "unlimited",
        "within_limit",
        "over_soft_limit",
        "over_limit",
        "no_subscription",
        "not_entitled",
        "spend_cap_reached",
    ]
    metric: str
    used: DecimalOut | None
    requested: DecimalOut
    limit: DecimalOut | None
    remaining: DecimalOut | None
    enforcement: str | None
    period_start: dt.date
    period_end: dt.date
    as_of: dt.datetime | None


# --- pushed usage -------------------------------------------------------------------


class UsageIngestIn(BaseModel):
    """A batch of events; each one is validated by the event rules, not by this schema."""

    events: list[Any] = Field(
        description="Events (contract section 2); at most 10,000 per request",
        examples=[
            [
                {
                    "event_id": "evt-1",
                    "tenant_id": "acme",
                    "metric": "api_calls",
                    "quantity": "1",
                    "occurred_at": "2026-11-24T10:00:00Z",
                }
            ]
        ],
    )


class RejectedEventOut(BaseModel):
    index: int
    event_id: str | None
    reason: str


class UsageIngestOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedEventOut]


# --- usage summary ------------------------------------------------------------------


class UsageDayOut(BaseModel):
    date: dt.date
    quantity_sum: DecimalOut
    event_count: int
    quantity_max: DecimalOut


class UsageMetricOut(BaseModel):
    metric: str
    quantity_sum: DecimalOut
    event_count: int
    quantity_max: DecimalOut
    days: list[UsageDayOut]


class UsageSummaryOut(BaseModel):
    tenant_id: str
    start: dt.date
    end: dt.date
    as_of: dt.datetime | None
    metrics: list[UsageMetricOut]
