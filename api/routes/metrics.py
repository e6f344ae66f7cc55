"""Billable metrics (contract section 4a): define (global write keys), list, show, and a
tenant's month of one metric."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel

from api.auth import READ, WRITE, Principal, require_scope
from api.routes.common import TenantPath
from api.state import ApiState, api_state
from models.api import DecimalOut
from models.identifiers import METRIC_PATTERN as METRIC_RE
from models.metrics import MetricDefinition
from models.period import BillingPeriod
from services.audit import record_change
from services.metrics import catalog
from services.metrics.store import month_usage
from tallyflow.core.clock import utc_now

router = APIRouter(prefix="/api/billing", tags=["metrics"])

MetricCode = Annotated[str, PathParam(pattern=METRIC_RE, description="The metric code")]

EXAMPLE = {
    "code": "llm_tokens",
    "name": "LLM tokens",
    "event_metric": "llm.tokens",
    "aggregation": "sum",
    "value": "quantity",
    "filters": {"region": ["eu-west", "eu-central"]},
    "group_by": ["model"],
}


class MetricOut(BaseModel):
    code: str
    name: str
    event_metric: str
    aggregation: str
    value: str
    percentile: str | None
    time_unit: str | None
    filters: dict[str, list[str]]
    group_by: list[str]


class MetricGroupOut(BaseModel):
    group: dict[str, str | None]
    value: DecimalOut


class MetricUsageOut(BaseModel):
    tenant_id: str
    metric: str
    aggregation: str
    period_start: dt.date
    period_end: dt.date
    as_of: dt.datetime | None
    value: DecimalOut
    groups: list[MetricGroupOut]


def _out(metric: MetricDefinition) -> MetricOut:
    return MetricOut.model_validate(metric.to_json())


@router.post("/metrics", status_code=201, response_model=MetricOut)
def create_metric(
    principal: Annotated[Principal, Depends(require_scope(WRITE))],
    state: Annotated[ApiState, Depends(api_state)],
    body: Annotated[dict[str, Any], Body(examples=[EXAMPLE])],
) -> MetricOut:
    """Define a billable metric; 409 when the code exists (metrics are immutable)."""
    principal.require_global()
    with state.engine.begin() as conn:
        created = _out(catalog.create_metric(conn, body))
        record_change(
            conn,
            principal,
            "metric.create",
            tenant_id=None,
            obj=("metric", created.code),
            before=None,
            after=created,
        )
        return created


@router.get("/metrics", response_model=list[MetricOut])
def list_metrics(
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> list[MetricOut]:
    """Every billable metric (a catalog, readable by tenant keys too)."""
    with state.engine.connect() as conn:
        return [_out(m) for m in catalog.list_metrics(conn)]


@router.get("/metrics/{code}", response_model=MetricOut)
def get_metric(
    code: MetricCode,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
) -> MetricOut:
    with state.engine.connect() as conn:
        return _out(catalog.get_metric(conn, code))


@router.get("/tenants/{tenant_id}/metrics/{code}/usage", response_model=MetricUsageOut)
def get_metric_usage(
    tenant_id: TenantPath,
    code: MetricCode,
    principal: Annotated[Principal, Depends(require_scope(READ))],
    state: Annotated[ApiState, Depends(api_state)],
    period: Annotated[
        str | None, Query(description="YYYY-MM (default: the current period)")
    ] = None,
) -> MetricUsageOut:
    """The tenant's calendar-month value of the metric (total and groups), as precomputed
    by the last ingest or backfill run that touched the month."""
    principal.check_tenant(tenant_id)
    month = (
        BillingPeriod.parse(period) if period is not None else BillingPeriod.of(utc_now().date())
    )
    with state.engine.connect() as conn:
        metric = catalog.get_metric(conn, code)
        found = month_usage(conn, metric, tenant_id, month)
    return MetricUsageOut(
        tenant_id=tenant_id,
        metric=metric.code,
        aggregation=metric.aggregation,
        period_start=month.start,
        period_end=month.end,
        as_of=found.as_of,
        value=found.value,
        groups=[MetricGroupOut(group=g, value=v) for g, v in found.groups],
    )
