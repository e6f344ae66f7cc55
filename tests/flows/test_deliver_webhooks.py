"""End to end through real Prefect flows: an ingest run crosses an alert in its commit,
the outbox holds the event, and the `deliver_webhooks` flow delivers it, signed, to a real
receiver that fails the first attempt (retried under the same webhook-id)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response

from flows.deliver_webhooks import deliver_webhooks
from flows.ingest_usage import ingest_usage
from models.spend import AlertIn
from services.alerts import replace_alerts
from services.webhooks.endpoints import create_endpoint
from tallyflow.core.clock import frozen_at
from tallyflow.core.settings import Settings
from tests.helpers import TEST_BOX, ev, rows, write_jsonl
from tests.services.test_invoicing import PER_UNIT, seed_plan, subscribe

pytestmark = pytest.mark.usefixtures("prefect_harness")

RUN_AT = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


def test_ingest_fires_an_alert_and_the_flow_delivers_it(
    settings: Settings,
    engine: Engine,
    httpserver: HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TALLYFLOW_WEBHOOK_ALLOW_PRIVATE", "true")
    received: list[dict[str, Any]] = []
    secret = ""

    def receiver(request: Request) -> Response:
        body = request.get_data(as_text=True)
        headers = dict(request.headers.items())
        Webhook(secret).verify(body, headers)  # a bad signature answers 500 (and fails below)
        received.append({"headers": headers, "body": body})
        return Response("busy", status=503) if len(received) == 1 else Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    with engine.begin() as conn:
        plan = seed_plan(conn, "pro", base_fee="10", quotas={"api.calls": {"pricing": PER_UNIT}})
        subscribe(conn, "acme", plan, "2026-11-01")
        _, secret = create_endpoint(
            conn,
            url=httpserver.url_for("/hook"),
            events=["usage.threshold_reached"],
            allow_private=True,
            now=RUN_AT,
            box=TEST_BOX,
        )
        replace_alerts(
            conn, "acme", [AlertIn(metric="api.calls", threshold=Decimal(5))], now=RUN_AT
        )

    landing = Path(settings.landing or "")
    write_jsonl(
        landing / "a.jsonl",
        [ev(f"e{i}", quantity="2", occurred_at="2026-11-05T10:00:00Z") for i in range(3)],
    )
    with frozen_at(RUN_AT):
        ingest_usage(paths=[str(landing)])
    (event,) = rows(engine, "SELECT id, type, data->>'used' FROM webhook_events")
    assert event[1:] == ("usage.threshold_reached", "6")

    first = deliver_webhooks()  # the wall clock: past the event, so it is due
    assert (first["attempted"], first["retrying"]) == (1, 1)
    assert rows(engine, "SELECT status, attempts FROM webhook_deliveries") == [("pending", 1)]
    # the next run comes after the retry is due (the deployment runs every minute)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 second'"
        )
    second = deliver_webhooks()
    assert second["delivered"] == 1
    assert rows(engine, "SELECT status, attempts FROM webhook_deliveries") == [("delivered", 2)]
    assert [r["headers"]["Webhook-Id"] for r in received] == [event[0], event[0]]
    # a second ingest run over nothing new fires nothing more
    with frozen_at(RUN_AT):
        ingest_usage(paths=[str(landing)])
    assert rows(engine, "SELECT count(*) FROM webhook_events") == [(1,)]


def test_every_run_records_a_job_run_with_its_flow_run_id(engine: Engine) -> None:
    """Like every flow (flows/runs.py): one job_runs row per run, the flow-run id on it."""
    assert deliver_webhooks(limit=10) == {
        "attempted": 0,
        "delivered": 0,
        "retrying": 0,
        "failed": 0,
    }
    ((job, status, parameters, summary, flow_run_id),) = rows(
        engine, "SELECT job, status, parameters, summary, flow_run_id FROM job_runs"
    )
    assert (job, status, parameters) == ("deliver_webhooks", "succeeded", {"limit": 10})
    assert summary == {"attempted": 0, "delivered": 0, "retrying": 0, "failed": 0}
    assert flow_run_id is not None and uuid.UUID(flow_run_id)
