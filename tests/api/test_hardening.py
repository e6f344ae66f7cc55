"""Issue 11, hostile traffic: 401 before the body is read, byte-counted body caps (chunked
uploads too), slow uploads, a negative key cache, poison events, calendar edges, key expiry
and last use, health, readiness, metrics and request ids. Real app, real Postgres."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from api.state import ApiState
from services.api_keys import create_api_key
from tallyflow.core.settings import Settings
from tests.api.conftest import PRO_PLAN, TENANT, Keys

B = "/api/billing"
INGEST = f"{B}/usage:ingest"


def event(event_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tenant_id": TENANT,
        "metric": "api_calls",
        "quantity": "1",
        "occurred_at": "2026-01-01T00:00:00Z",
        **changes,
    }


def state_of(client: TestClient) -> ApiState:
    state: ApiState = client.app.state.tallyflow  # type: ignore[attr-defined]
    return state


# --- the body: authenticated first, capped by bytes, timed ---------------------------------


def asgi_call(
    client: TestClient,
    path: str,
    headers: dict[str, str],
    chunks: list[bytes],
    delay: float = 0,
    complete: bool = True,
) -> tuple[int, dict[str, Any], int]:
    """Call the app as a server would, with a body sent in `chunks` (each after `delay`
    seconds; `complete=False`: the client then stops sending without ending the body):
    (status, json body, chunks the app asked for)."""
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        if asked > len(chunks):
            await asyncio.sleep(3600)  # the client stays connected, sending nothing
        await asyncio.sleep(delay)
        more = asked < len(chunks) or not complete
        return {"type": "http.request", "body": chunks[asked - 1], "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    portal = client.portal  # type: ignore[attr-defined]
    portal.call(client.app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), asked


def test_no_key_is_answered_401_before_a_byte_of_the_body_is_read(
    client: TestClient, keys: Keys
) -> None:
    for headers in ({}, keys.header("tf_000000000000_bogus"), {"Authorization": "Basic x"}):
        status, body, asked = asgi_call(client, INGEST, headers, [b'{"events": [' + b" " * 1000])
        assert (status, asked) == (401, 0), body
    # with a key, the body is read
    status, _, asked = asgi_call(
        client, INGEST, keys.header(keys.admin), [json.dumps({"events": [event("a")]}).encode()]
    )
    assert (status, asked) == (202, 1)


def test_chunked_upload_over_the_cap_is_413_without_reading_it_all(
    client: TestClient, keys: Keys
) -> None:
    cap = state_of(client).settings.ingest_body_cap_bytes
    chunk = b" " * (1 << 20)
    chunks = [chunk] * (cap // len(chunk) + 8)  # no Content-Length: counted as it arrives
    status, body, asked = asgi_call(client, INGEST, keys.header(keys.admin), chunks)
    assert status == 413 and body["code"] == "body_too_large"
    assert asked == cap // len(chunk) + 1  # stopped at the first byte over the cap

    # through the HTTP client: a generator body is sent chunked (no Content-Length)
    def generate() -> Iterator[bytes]:
        yield from [b" " * (1 << 20)] * 2

    answer = client.post(
        f"{B}/tenants/{TENANT}/quotas:check",
        content=generate(),
        headers={**keys.header(keys.admin), "content-type": "application/json"},
    )
    assert answer.status_code == 413  # 1 MiB elsewhere

    # a Content-Length over the cap: 413 at once
    status, _, asked = asgi_call(
        client, INGEST, {**keys.header(keys.admin), "content-length": str(cap + 1)}, [b"{}"]
    )
    assert (status, asked) == (413, 0)


def test_a_slow_upload_is_answered_408(settings: Settings, keys: Keys) -> None:
    slow = settings.model_copy(update={"body_read_timeout_seconds": 0.3})
    with TestClient(create_app(slow)) as client:
        status, body, _ = asgi_call(
            client, INGEST, keys.header(keys.admin), [b'{"events": ', b"[]}"], delay=0.2
        )
        assert status == 408 and body["code"] == "request_timeout"
        # a client that stops sending altogether
        status, _, _ = asgi_call(
            client, INGEST, keys.header(keys.admin), [b'{"events": '], complete=False
        )
        assert status == 408


def test_bogus_keys_cost_one_lookup_each_then_none(client: TestClient) -> None:
    state = state_of(client)
    before = state.keys.lookups
    bogus = {"Authorization": "Bearer tf_abcdefabcdef_not-a-key"}
    for _ in range(50):
        assert client.get(f"{B}/plans", headers=bogus).status_code == 401
    assert state.keys.lookups == before + 1
    # a flood of distinct bogus prefixes is budgeted (no lookup per key past the budget)
    for n in range(200):
        answer = client.get(f"{B}/plans", headers={"Authorization": f"Bearer tf_{n:012x}_x"})
        assert answer.status_code == 401
    assert state.keys.lookups - before <= 1 + 200
    assert len(state.keys._unknown) <= 10_000


# --- poison events: a row reason or a 4xx, never a 500 ----------------------------------


@pytest.mark.parametrize(
    ("poison", "status"),
    [
        (event("nul\u0000id"), 202),  # NUL in an id: a row reason
        (event("nul-prop", properties={"note": "a\u0000b"}), 202),
        (event("non-string-tenant", tenant_id=["acme"]), 202),
        (event("object-tenant", tenant_id={"id": "acme"}), 202),
        (event("number-tenant", tenant_id=42), 202),
    ],
    ids=["nul-id", "nul-in-properties", "list-tenant", "object-tenant", "number-tenant"],
)
def test_poison_event_is_a_row_reason_and_the_good_ones_stay(
    client: TestClient, keys: Keys, poison: dict[str, Any], status: int
) -> None:
    body = {"events": [event("good-1"), poison, event("good-2")]}
    for key in (keys.admin, keys.tenant):
        answer = client.post(INGEST, json=body, headers=keys.header(key))
        assert answer.status_code == status, answer.text
        payload = answer.json()
        if key == keys.admin:
            assert payload["accepted"] == 2 and [r["index"] for r in payload["rejected"]] == [1]
        else:  # the same batch again: the good ones are duplicates now
            assert payload["duplicates"] == 2 and len(payload["rejected"]) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"events": [{"event_id": "n", "properties": {"x": NaN}}]}',
        b'{"events": [{"event_id": "i", "properties": {"x": Infinity}}]}',
        b'{"events": [{"event_id": "m", "properties": {"x": -Infinity}}]}',
        b'{"events": [{"event_id": "d", "properties": ' + b"[" * 20_000 + b"]" * 20_000 + b"}]}",
        b'{"events": [' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_000 + b"]}",
    ],
    ids=["nan", "infinity", "minus-infinity", "deep-array", "deep-object"],
)
def test_non_json_numbers_and_deep_nesting_are_422(
    client: TestClient, keys: Keys, raw: bytes
) -> None:
    answer = client.post(
        INGEST, content=raw, headers={**keys.header(keys.admin), "content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_input"


def test_deep_json_elsewhere_is_a_4xx(client: TestClient, admin: dict[str, str]) -> None:
    deep = b'{"metric": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    answer = client.post(
        f"{B}/tenants/{TENANT}/quotas:check",
        content=deep,
        headers={**admin, "content-type": "application/json"},
    )
    assert 400 <= answer.status_code < 500, answer.text


# --- calendar edges ---------------------------------------------------------------------


def test_dates_at_the_calendars_edges_are_422(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(f"{B}/plans", json=PRO_PLAN, headers=admin).status_code == 201
    T = f"{B}/tenants/{TENANT}"
    answers = {
        "generate 9999-12": client.post(
            f"{B}/invoices:generate", json={"period": "9999-12"}, headers=admin
        ),
        "generate 0000-01": client.post(
            f"{B}/invoices:generate", json={"period": "0000-01"}, headers=admin
        ),
        "list 9999-12": client.get(f"{T}/invoices", params={"period": "9999-12"}, headers=admin),
        "summary from 0001-01-01": client.get(
            f"{T}/usage/summary", params={"start": "0001-01-01"}, headers=admin
        ),
        "summary to 9999-12-31": client.get(
            f"{T}/usage/summary", params={"end": "9999-12-31"}, headers=admin
        ),
        "subscription from 0001-01-01": client.post(
            f"{T}/subscriptions",
            json={"plan_code": "pro", "starts_on": "0001-01-01"},
            headers=admin,
        ),
        "subscription from 9999-12-01": client.post(
            f"{T}/subscriptions",
            json={"plan_code": "pro", "starts_on": "9999-12-01"},
            headers=admin,
        ),
        "override to 9999-12-31": client.put(
            f"{T}/quotas/overrides",
            json={"overrides": [{"metric": "api_calls", "effective_to": "9999-12-31"}]},
            headers=admin,
        ),
    }
    for name, answer in answers.items():
        assert answer.status_code == 422, f"{name}: {answer.status_code} {answer.text}"


# --- keys: expiry, last use, statement timeout ------------------------------------------


def test_an_expired_key_is_refused(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        made = create_api_key(
            conn,
            name="temp",
            scopes=["billing.read"],
            expires_on=dt.date(2026, 1, 2),
            today=dt.date(2026, 1, 1),
        )
    # NOTE: the date check runs on the server's clock; 2026-01-02 is past on any run here
    answer = client.get(f"{B}/plans", headers={"Authorization": f"Bearer {made.key}"})
    assert answer.status_code == 401
    with engine.connect() as conn:
        listed = conn.execute(sa.text("SELECT count(*) FROM api_keys WHERE name = 'temp'"))
        assert listed.scalar_one() == 1


def test_last_used_is_recorded(settings: Settings, engine: Engine, keys: Keys) -> None:
    with TestClient(create_app(settings)) as client:
        for _ in range(5):
            assert client.get(f"{B}/plans", headers=keys.header(keys.read)).status_code == 200
    # written once per key per minute, at the latest when the app stops
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT name, last_used_at FROM api_keys")).all())
    assert rows["read"] is not None and rows["write"] is None


def test_api_sessions_have_a_statement_timeout(client: TestClient) -> None:
    with state_of(client).engine.connect() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "30s"
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            conn.execute(sa.text("SET statement_timeout = '50ms'; SELECT pg_sleep(1)"))


# --- operations -------------------------------------------------------------------------


def test_health_readiness_metrics_and_request_ids(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert client.get(f"{B}/plans", headers=admin).status_code == 200
    answer = client.get(f"{B}/tenants/{TENANT}/quotas", headers={**admin, "x-request-id": "abc-1"})
    assert answer.headers["x-request-id"] == "abc-1"
    made = client.get("/healthz", headers={"x-request-id": "bad id!"}).headers["x-request-id"]
    assert made != "bad id" and len(made) == 32  # not echoed: a fresh id
    text = client.get("/metrics").text
    assert 'route="/api/billing/tenants/{tenant_id}/quotas"' in text  # templates, not paths
    assert f"/tenants/{TENANT}/" not in text
    for name in (
        "tallyflow_http_request_duration_seconds_bucket",
        "tallyflow_quota_snapshot_age_seconds",
        "tallyflow_inbox_backlog_events",
    ):
        assert name in text, name

    stale = settings.model_copy(update={"snapshot_max_age_seconds": 1e-9})
    with TestClient(create_app(stale)) as strict:
        answer = strict.get("/readyz")
        assert answer.status_code == 503 and answer.json()["code"] == "snapshot_stale"


def test_keys_and_quotas_reload_without_notify(
    settings: Settings, engine: Engine, keys: Keys
) -> None:
    """A change made without NOTIFY (a hand-typed UPDATE) is seen after the periodic reload."""
    quick = settings.model_copy(update={"snapshot_reload_seconds": 0.2})
    with TestClient(create_app(quick)) as client:
        auth = keys.header(keys.read)
        assert client.get(f"{B}/plans", headers=auth).status_code == 200
        with engine.begin() as conn:  # no pg_notify: the listener hears nothing
            conn.execute(sa.text("UPDATE api_keys SET revoked_at = now() WHERE name = 'read'"))
        deadline = time.monotonic() + 30
        answer = client.get(f"{B}/plans", headers=auth)
        while answer.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            answer = client.get(f"{B}/plans", headers=auth)
        assert answer.status_code == 401


def test_requests_are_logged_as_json_with_their_id(
    client: TestClient, admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tallyflow.api.access"):
        client.get(f"{B}/tenants/{TENANT}/quotas", headers={**admin, "x-request-id": "req-42"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tallyflow.api.access"]
    (line,) = [x for x in lines if x["request_id"] == "req-42"]
    assert line["route"] == "/api/billing/tenants/{tenant_id}/quotas"
    assert (line["status"], line["key"], line["method"]) == (200, "admin", "GET")
    assert admin["Authorization"].split()[1] not in json.dumps(lines)  # never the key


def test_metrics_show_the_last_run_of_each_flow(client: TestClient, engine: Engine) -> None:
    from services.job_runs import fail_job_run, finish_job_run, start_job_run

    def run(job: str, started: str, error: bool) -> None:
        run_id = start_job_run(engine, job, {})
        if error:
            fail_job_run(engine, run_id, RuntimeError("x"))
        with engine.begin() as conn:
            if not error:
                finish_job_run(conn, run_id, {})
            conn.execute(
                sa.text("UPDATE job_runs SET started_at = CAST(:at AS timestamptz) WHERE id = :id"),
                {"at": started, "id": run_id},
            )

    # the latest run of each job, whatever order they were recorded in
    run("ingest_usage", "2026-11-30T10:00:00Z", error=False)
    run("ingest_usage", "2026-11-30T12:00:00Z", error=True)
    run("ingest_usage", "2026-11-30T11:00:00Z", error=False)
    for minute in (3, 1, 2):
        run("deliver_webhooks", f"2026-11-30T12:0{minute}:00Z", error=minute != 3)
    text = client.get("/metrics").text
    assert 'tallyflow_job_last_run_succeeded{job="ingest_usage"} 0.0' in text
    assert 'tallyflow_job_last_run_succeeded{job="deliver_webhooks"} 1.0' in text
    noon = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC).timestamp()
    shown = dict(
        li.rsplit(" ", 1)
        for li in text.splitlines()
        if li.startswith("tallyflow_job_last_run_timestamp")
    )
    assert {k: float(v) for k, v in shown.items()} == {
        'tallyflow_job_last_run_timestamp_seconds{job="deliver_webhooks",status="succeeded"}': (
            noon + 180
        ),
        'tallyflow_job_last_run_timestamp_seconds{job="ingest_usage",status="failed"}': noon,
    }
