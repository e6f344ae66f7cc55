"""Plan quotas that name a billable metric (contract section 4a)."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from models.api import PlanIn
from models.metrics import EVENT_AGGREGATIONS
from models.pricing.matrix import Matrix, check_matrix_keys
from models.pricing.registry import parse_pricing
from services.metrics.catalog import list_metrics
from tallyflow.core.errors import InvalidInput


def check_plan_quotas(conn: sa.Connection, plan: PlanIn) -> dict[str, str]:
    """The aggregation to store per quota metric; InvalidInput naming the bad field.

    - A quota naming a billable metric must omit `aggregation` or give the metric's.
    - A quota naming no billable metric measures events: sum, count or max only.
    - `matrix` pricing needs a grouped billable metric, match keys among its group_by,
      and the quota's own `included` at 0 (each entry has its own).
    """
    metrics = {m.code: m for m in list_metrics(conn, codes=[q.metric for q in plan.quotas])}
    out: dict[str, str] = {}
    for i, quota in enumerate(plan.quotas):
        where = f"quotas[{i}]"
        metric = metrics.get(quota.metric)
        given = "aggregation" in quota.model_fields_set
        if metric is not None:
            if given and quota.aggregation != metric.aggregation:
                raise InvalidInput(
                    f"{where}.aggregation {quota.aggregation!r} must be omitted or equal the"
                    f" billable metric {metric.code!r}'s aggregation {metric.aggregation!r}"
                )
            out[quota.metric] = metric.aggregation
        else:
            if quota.aggregation not in EVENT_AGGREGATIONS:
                raise InvalidInput(
                    f"{where}.aggregation {quota.aggregation!r} needs a billable metric"
                    f" {quota.metric!r} (without one: sum, count or max)"
                )
            out[quota.metric] = quota.aggregation
        if quota.pricing.get("model") == Matrix.model:
            if metric is None or not metric.group_by:
                raise InvalidInput(
                    f"{where}.pricing matrix needs a billable metric with group_by"
                    f" ({quota.metric!r} has none)"
                )
            matrix = parse_pricing(quota.pricing, f"{where}.pricing")
            assert isinstance(matrix, Matrix)
            check_matrix_keys(matrix, metric.group_by, f"{where}.pricing")
            if quota.included != Decimal(0):
                raise InvalidInput(
                    f"{where}.included must be 0 with matrix pricing (each entry has its own)"
                )
    return out
