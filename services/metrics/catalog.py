"""Billable metric definitions: create (once; immutable), list, get."""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from models.metrics import MetricDefinition
from tallyflow.core.errors import Conflict, NotFound
from tallyflow.core.sqlfiles import sql


def create_metric(conn: sa.Connection, data: object) -> MetricDefinition:
    """Validate strictly (InvalidInput naming the field) and store; Conflict when the code exists.

    NOTE: no quota refresh here: quota_usage of an existing quota naming this code changes
    only once a run (ingest or `backfill --metric`) has computed the metric's usage.
    """
    metric = MetricDefinition.parse(data)
    created = conn.execute(
        sql("metrics/insert_metric"),
        {
            "code": metric.code,
            "name": metric.name,
            "event_metric": metric.event_metric,
            "aggregation": metric.aggregation,
            "value": metric.value,
            "percentile": metric.percentile,
            "time_unit": metric.time_unit,
            "filters": json.dumps(metric.to_json()["filters"]),
            "group_by": list(metric.group_by),
        },
    ).one_or_none()
    if created is None:
        raise Conflict(
            f"metric {metric.code!r} already exists (metrics are immutable: use a new code)",
            code="metric_exists",
        )
    return metric


def list_metrics(
    conn: sa.Connection, *, codes: Sequence[str] | None = None
) -> list[MetricDefinition]:
    rows = conn.execute(
        sql("metrics/select_metrics"), {"codes": None if codes is None else list(codes)}
    ).mappings()
    return [MetricDefinition.from_row(r) for r in rows]


def get_metric(conn: sa.Connection, code: str) -> MetricDefinition:
    found = list_metrics(conn, codes=[code])
    if not found:
        raise NotFound(f"metric {code!r} does not exist", code="metric_not_found")
    return found[0]


def metrics_by_code(conn: sa.Connection) -> dict[str, MetricDefinition]:
    return {m.code: m for m in list_metrics(conn)}
