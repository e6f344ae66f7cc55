"""Prometheus metrics of one API process (`GET /metrics`, prometheus-client).

- `tallyflow_http_request_duration_seconds{method, route, status}`: latency by route
  template (`/api/billing/tenants/{tenant_id}/quotas`), never by raw path (unbounded).
- `tallyflow_quota_snapshot_age_seconds`: since the quota snapshot was last fully loaded.
- `tallyflow_inbox_backlog_events`: pushed events not yet drained by an ingest run.
- `tallyflow_job_last_run_timestamp_seconds{job, status}` and
  `tallyflow_job_last_run_succeeded{job}`: the latest run of each flow (job_runs).

NOTE: one registry per app (not the library's global one): two apps in one process
(tests) do not collide, and nothing is registered at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tallyflow.core.sqlfiles import sql

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _DatabaseCollector(Collector):
    """Gauges read at scrape time: snapshot age, inbox backlog, last run per flow."""

    def __init__(self, engine: Callable[[], sa.Engine], loaded_at: Callable[[], float]) -> None:
        self._engine = engine
        self._loaded_at = loaded_at

    def collect(self) -> Iterator[Any]:
        age = GaugeMetricFamily(
            "tallyflow_quota_snapshot_age_seconds", "Seconds since the quota snapshot loaded"
        )
        loaded = self._loaded_at()
        age.add_metric([], time.time() - loaded if loaded else float("inf"))
        yield age
        with self._engine().connect() as conn:
            backlog = conn.execute(sql("ops/count_inbox_backlog")).scalar_one()
            runs = conn.execute(sql("ops/select_last_job_runs")).all()
        inbox = GaugeMetricFamily("tallyflow_inbox_backlog_events", "Pushed events not drained")
        inbox.add_metric([], float(backlog))
        yield inbox
        last = GaugeMetricFamily(
            "tallyflow_job_last_run_timestamp_seconds",
            "Start of the latest run of each job, labelled with its status",
            labels=["job", "status"],
        )
        ok = GaugeMetricFamily(
            "tallyflow_job_last_run_succeeded",
            "1 when the latest run of the job succeeded, 0 when it failed or runs",
            labels=["job"],
        )
        for r in runs:
            last.add_metric([r.job, r.status], r.started_at.timestamp())
            ok.add_metric([r.job], 1.0 if r.status == "succeeded" else 0.0)
        yield last
        yield ok


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "tallyflow_http_request_duration_seconds",
            "Request latency by route template",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)

    def watch_database(
        self, engine: Callable[[], sa.Engine], loaded_at: Callable[[], float]
    ) -> None:
        self.registry.register(_DatabaseCollector(engine, loaded_at))

    def render(self) -> bytes:
        return generate_latest(self.registry)
