"""Webhook delivery against a real HTTP receiver (pytest-httpserver) that fails the first
attempts and verifies every signature with standardwebhooks: retries under the same
webhook-id, backoff driven by explicit `now`, give-up, redirects, timeouts, leases."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from services.webhooks.delivery import MAX_ATTEMPTS, deliver_due, retry_delay
from services.webhooks.endpoints import create_endpoint, delete_endpoint, list_deliveries
from services.webhooks.outbox import emit
from tallyflow.core.sqlfiles import sql
from tests.helpers import TEST_BOX, rows

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@dataclass
class Receiver:
    """Answers `fail_first` attempts with 503, then 200; verifies each signature."""

    fail_first: int = 0
    status: int = 503
    secret: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        headers = {k: v for k, v in request.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        self.calls.append({"headers": headers, "body": body, "verified": verified})
        if len(self.calls) <= self.fail_first:
            return Response("receiver down", status=self.status)
        return Response("ok", status=200)


def register(engine: Engine, url: str, receiver: Receiver | None = None) -> int:
    with engine.begin() as conn:
        endpoint, secret = create_endpoint(
            conn,
            url=url,
            events=["invoice.closed", "usage.threshold_reached"],
            allow_private=True,
            now=T0,
            box=TEST_BOX,
        )
    if receiver is not None:
        receiver.secret = secret
    return endpoint.id


def emit_one(engine: Engine, now: dt.datetime = T0) -> str:
    with engine.begin() as conn:
        event_id = emit(
            conn,
            "invoice.closed",
            tenant_id="acme",
            data={"invoice_id": 7, "total": "40.00"},
            now=now,
        )
    assert event_id is not None
    return event_id


def delivery(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        (row,) = conn.execute(sa.text("SELECT * FROM webhook_deliveries")).mappings().all()
        return dict(row)


def run(engine: Engine, now: dt.datetime, **kw: Any) -> Any:
    return deliver_due(
        engine, now=now, allow_private=True, rng=random.Random(7), box=TEST_BOX, **kw
    )


def test_failed_attempts_are_retried_under_the_same_id_until_delivered(
    engine: Engine, httpserver: HTTPServer
) -> None:
    receiver = Receiver(fail_first=2)
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    register(engine, httpserver.url_for("/hook"), receiver)
    event_id = emit_one(engine)

    report = run(engine, T0)
    assert (report.attempted, report.retrying) == (1, 1)
    first = delivery(engine)
    assert first["status"] == "pending" and first["attempts"] == 1
    assert first["last_status_code"] == 503 and "503" in first["last_error"]
    # the first retry is due within 60 s
    assert T0 < first["next_attempt_at"] <= T0 + dt.timedelta(seconds=60)
    # not due yet: nothing is sent
    assert run(engine, T0 + dt.timedelta(seconds=10)).attempted == 0

    second_at = first["next_attempt_at"]
    assert run(engine, second_at).retrying == 1
    second = delivery(engine)
    assert second["attempts"] == 2
    # exponential: the second wait is longer than the first
    assert second["next_attempt_at"] - second_at > first["next_attempt_at"] - T0

    assert run(engine, second["next_attempt_at"]).delivered == 1
    done = delivery(engine)
    assert (done["status"], done["attempts"], done["last_error"]) == ("delivered", 3, None)
    assert run(engine, second["next_attempt_at"] + dt.timedelta(days=1)).attempted == 0

    assert len(receiver.calls) == 3
    assert all(c["verified"] for c in receiver.calls)
    assert {c["headers"]["Webhook-Id"] for c in receiver.calls} == {event_id}
    assert all(c["headers"]["Webhook-Signature"].startswith("v1,") for c in receiver.calls)
    body = json.loads(receiver.calls[-1]["body"])
    assert body == {
        "type": "invoice.closed",
        "timestamp": "2026-11-20T12:00:00Z",
        "data": {"invoice_id": 7, "total": "40.00"},
    }
    # every attempt carries the same body
    assert len({c["body"] for c in receiver.calls}) == 1


def test_a_tampered_body_fails_verification(engine: Engine, httpserver: HTTPServer) -> None:
    receiver = Receiver()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    register(engine, httpserver.url_for("/hook"), receiver)
    emit_one(engine)
    run(engine, T0)
    (call,) = receiver.calls
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver.secret).verify(call["body"].replace("40.00", "0.00"), call["headers"])


def test_gives_up_after_the_last_attempt_spread_over_about_a_day(
    engine: Engine, httpserver: HTTPServer
) -> None:
    receiver = Receiver(fail_first=10**6, status=500)
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    register(engine, httpserver.url_for("/hook"), receiver)
    emit_one(engine)
    now = T0
    while True:
        report = run(engine, now)
        assert report.attempted == 1
        row = delivery(engine)
        if row["status"] != "pending":
            break
        now = row["next_attempt_at"]
    assert row["status"] == "failed" and row["attempts"] == MAX_ATTEMPTS >= 8
    assert report.failed == 1
    span = row["last_attempt_at"] - T0
    assert dt.timedelta(hours=20) <= span <= dt.timedelta(hours=30)
    assert len(receiver.calls) == MAX_ATTEMPTS
    assert len({c["headers"]["Webhook-Id"] for c in receiver.calls}) == 1


def test_backoff_schedule() -> None:
    assert retry_delay(1, 1.0) == dt.timedelta(seconds=30)
    assert retry_delay(1, 0.0) == dt.timedelta(seconds=22.5)
    delays = [retry_delay(n, 0.5) for n in range(1, MAX_ATTEMPTS)]
    assert delays == sorted(delays)
    assert max(delays) <= dt.timedelta(hours=8)
    total_min = sum((retry_delay(n, 0.0) for n in range(1, MAX_ATTEMPTS)), dt.timedelta())
    total_max = sum((retry_delay(n, 1.0) for n in range(1, MAX_ATTEMPTS)), dt.timedelta())
    assert dt.timedelta(hours=20) < total_min < total_max < dt.timedelta(hours=30)


def test_redirects_are_not_followed(engine: Engine, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_response(
        Response("", status=302, headers={"Location": httpserver.url_for("/elsewhere")})
    )
    followed = Receiver()
    httpserver.expect_request("/elsewhere").respond_with_handler(followed)
    register(engine, httpserver.url_for("/hook"))
    emit_one(engine)
    assert run(engine, T0).retrying == 1
    row = delivery(engine)
    assert row["last_status_code"] == 302 and "redirect" in row["last_error"]
    assert followed.calls == []


def test_a_slow_receiver_times_out_and_is_retried(engine: Engine, httpserver: HTTPServer) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5)
        return Response("late", status=200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(slow)
    register(engine, httpserver.url_for("/hook"))
    emit_one(engine)
    with httpx.Client(timeout=0.2, follow_redirects=False) as client:
        report = run(engine, T0, client=client)
    release.set()
    assert report.retrying == 1
    assert delivery(engine)["last_error"].startswith("timeout")


def test_private_addresses_are_refused_at_delivery_unless_allowed(
    engine: Engine, httpserver: HTTPServer
) -> None:
    receiver = Receiver()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    register(engine, httpserver.url_for("/hook"))  # registered while allowed
    emit_one(engine)
    report = deliver_due(engine, now=T0, allow_private=False, box=TEST_BOX)
    assert report.retrying == 1
    assert delivery(engine)["last_error"].startswith("refused")
    assert receiver.calls == []


def test_a_crash_after_sending_resends_once_the_lease_expires(
    engine: Engine, httpserver: HTTPServer
) -> None:
    receiver = Receiver()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    register(engine, httpserver.url_for("/hook"), receiver)
    event_id = emit_one(engine)
    # a run leased the delivery and died before recording anything
    with engine.begin() as conn:
        conn.execute(
            sql("webhooks/claim_due_deliveries"),
            {"now": T0, "lease_until": T0 + dt.timedelta(minutes=5), "limit": 10},
        )
    assert run(engine, T0 + dt.timedelta(minutes=1)).attempted == 0  # still leased
    assert run(engine, T0 + dt.timedelta(minutes=6)).delivered == 1
    assert delivery(engine)["attempts"] == 2
    assert [c["headers"]["Webhook-Id"] for c in receiver.calls] == [event_id]


def test_events_exist_only_if_their_transaction_commits(engine: Engine) -> None:
    register(engine, "http://127.0.0.1:9/hook")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        emit(conn, "invoice.closed", tenant_id="acme", data={}, now=T0)
        raise RuntimeError("the change that caused the event failed")
    assert rows(engine, "SELECT count(*) FROM webhook_events") == [(0,)]
    assert rows(engine, "SELECT count(*) FROM webhook_deliveries") == [(0,)]


def test_unsubscribed_types_and_retired_endpoints_get_nothing(engine: Engine) -> None:
    endpoint_id = register(engine, "http://127.0.0.1:9/hook")
    with engine.begin() as conn:
        assert emit(conn, "invoice.voided", tenant_id="acme", data={}, now=T0) is None
    emit_one(engine)
    with engine.begin() as conn:
        delete_endpoint(conn, endpoint_id, now=T0)
    assert delivery(engine)["status"] == "cancelled"
    assert run(engine, T0 + dt.timedelta(hours=1)).attempted == 0
    with engine.begin() as conn:  # after the delete: no endpoint, no event recorded
        assert emit(conn, "invoice.closed", tenant_id="acme", data={}, now=T0) is None
    assert rows(engine, "SELECT count(*) FROM webhook_deliveries") == [(1,)]
    with engine.connect() as conn:  # the retired endpoint's log stays readable
        assert [d.status for d in list_deliveries(conn, endpoint_id)] == ["cancelled"]


def test_one_event_goes_to_every_subscribed_endpoint(
    engine: Engine, httpserver: HTTPServer
) -> None:
    first, second = Receiver(), Receiver()
    httpserver.expect_request("/a", method="POST").respond_with_handler(first)
    httpserver.expect_request("/b", method="POST").respond_with_handler(second)
    register(engine, httpserver.url_for("/a"), first)
    register(engine, httpserver.url_for("/b"), second)
    emit_one(engine)
    assert run(engine, T0).delivered == 2
    assert first.calls[0]["verified"] and second.calls[0]["verified"]
    # each endpoint has its own secret: one's signature does not verify with the other's
    with pytest.raises(WebhookVerificationError):
        Webhook(second.secret).verify(first.calls[0]["body"], first.calls[0]["headers"])
