"""API schemas of contract section 5b: credits, alerts, spend caps, webhooks.

Money is a decimal string (never a float); bad input answers 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer, field_validator, model_validator

from models.api import DecimalOut, Metric, NonNegative, Strict, iso_currency

WebhookEventType = Literal[
    "usage.threshold_reached", "spend.threshold_reached", "invoice.closed", "invoice.voided"
]
Positive = Annotated[NonNegative, Field(gt=0)]
# NOTE: money as its exact text at the scale the service gave it (the currency's minor unit,
# "25.00", "1000" yen), unlike DecimalOut which drops trailing zeros of quantities.
MoneyOut = Annotated[
    Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")
]


# --- prepaid credits ----------------------------------------------------------------


class CreditGrantIn(Strict):
    amount: Positive
    currency: str = Field(examples=["USD"])
    effective_from: dt.date | None = Field(default=None, description="Default: today (UTC)")
    expires_on: dt.date | None = Field(default=None, description="Exclusive; null = never")
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    note: str | None = Field(default=None, max_length=1000)

    @field_validator("currency")
    @classmethod
    def _currency_is_iso(cls, value: str) -> str:
        return iso_currency(value)

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> CreditGrantIn:
        from models.money import quantum

        if self.amount != self.amount.quantize(quantum(self.currency)):
            raise ValueError(f"amount {self.amount} has more decimals than {self.currency} allows")
        return self


class CreditGrantOut(BaseModel):
    id: int
    amount: MoneyOut
    remaining: MoneyOut
    currency: str
    effective_from: dt.date
    expires_on: dt.date | None
    priority: int
    note: str | None
    created_at: dt.datetime


class CreditBalanceOut(BaseModel):
    currency: str
    available: MoneyOut


class CreditsOut(BaseModel):
    tenant_id: str
    balances: list[CreditBalanceOut]
    grants: list[CreditGrantOut]


# --- alerts ---------------------------------------------------------------------------


class AlertIn(Strict):
    """One of {metric, threshold_percent}, {metric, threshold} or {spend}."""

    metric: Metric | None = None
    threshold_percent: Positive | None = None
    threshold: Positive | None = None
    spend: Positive | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> AlertIn:
        given = [
            n for n in ("threshold_percent", "threshold", "spend") if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of threshold_percent, threshold or spend")
        if given[0] == "spend" and self.metric is not None:
            raise ValueError("a spend alert has no metric")
        if given[0] != "spend" and self.metric is None:
            raise ValueError(f"{given[0]} needs a metric")
        return self

    @property
    def kind(self) -> str:
        if self.spend is not None:
            return "spend"
        return "usage_percent" if self.threshold_percent is not None else "usage_absolute"

    @property
    def value(self) -> Decimal:
        value = self.spend or self.threshold_percent or self.threshold
        assert value is not None
        return value


class AlertsIn(Strict):
    alerts: list[AlertIn] = Field(max_length=100)

    @field_validator("alerts")
    @classmethod
    def _distinct(cls, value: list[AlertIn]) -> list[AlertIn]:
        seen: set[tuple[str, str | None, Decimal]] = set()
        for alert in value:
            key = (alert.kind, alert.metric, alert.value)
            if key in seen:
                raise ValueError("the same alert appears more than once")
            seen.add(key)
        return value


class AlertOut(BaseModel):
    id: int
    metric: str | None
    threshold_percent: DecimalOut | None
    threshold: DecimalOut | None
    spend: DecimalOut | None
    triggered_at: dt.datetime | None = Field(description="When it fired in the current period")


class AlertsOut(BaseModel):
    tenant_id: str
    period_start: dt.date
    period_end: dt.date
    alerts: list[AlertOut]


# --- spend cap ------------------------------------------------------------------------


class SpendCapIn(Strict):
    amount: NonNegative | None = Field(description="In the plan's currency; null removes it")


class SpendCapOut(BaseModel):
    tenant_id: str
    amount: MoneyOut | None
    spend: MoneyOut | None = Field(description="The period's spend as of the last run")
    currency: str | None
    as_of: dt.datetime | None
    reached: bool


# --- webhooks -------------------------------------------------------------------------


class WebhookIn(Strict):
    url: str = Field(max_length=2000, examples=["https://hooks.example.com/tallyflow"])
    events: list[WebhookEventType] = Field(min_length=1)


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    created_at: dt.datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="whsec_...: shown once, keep it to verify signatures")


class WebhookDeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="The webhook-id header of every attempt")
    event_type: str
    tenant_id: str | None
    status: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
