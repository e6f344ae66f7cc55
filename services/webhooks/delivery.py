"""Delivering due webhook messages: at least once, signed, with backoff and jitter.

A run leases the due deliveries (one short transaction: attempts + 1, next_attempt_at
pushed to the end of the lease), sends each one, then records the outcome (another short
transaction). No transaction is open while a receiver answers.

NOTE: why at least once and never lost: a run that dies after sending and before recording
leaves the lease to expire, and the next run sends the same message again under the same
`webhook-id` (receivers deduplicate on it). An outcome is recorded only by the lease that
made the attempt (`attempts` must still match), so a late run never overwrites a newer one.

Retries (`retry_delay`): after attempt n the next one is due base × 4^(n-1) later (30 s,
2 min, 8 min, 32 min, 2 h 8 min, then capped at 8 h), times a jitter factor in [0.75, 1]
so that receivers recovering from an outage are not hit by every sender at once. With
MAX_ATTEMPTS = 9 that is one try and eight retries spread over 21.5 to 28.7 hours.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.webhooks.outbox import message_body
from services.webhooks.signing import signed_headers
from services.webhooks.urls import Resolver, private_addresses, resolve_host
from tallyflow.core.clock import utc_now
from tallyflow.core.secrets import SecretBox
from tallyflow.core.sqlfiles import sql

MAX_ATTEMPTS = 9
FIRST_RETRY = dt.timedelta(seconds=30)
BACKOFF_FACTOR = 4
MAX_DELAY = dt.timedelta(hours=8)
JITTER_LOW = 0.75
LEASE = dt.timedelta(minutes=5)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_ERROR_LENGTH = 500
USER_AGENT = "tallyflow-webhooks/1"


def retry_delay(attempts_made: int, jitter: float) -> dt.timedelta:
    """How long after attempt `attempts_made` (1-based) the next is due; jitter in [0, 1].

    >>> [retry_delay(n, 1.0).total_seconds() for n in (1, 2, 3)], retry_delay(7, 0.0)
    ([30.0, 120.0, 480.0], datetime.timedelta(seconds=21600))
    """
    if attempts_made < 1:
        raise ValueError("attempts_made counts from 1")
    base = min(FIRST_RETRY * BACKOFF_FACTOR ** (attempts_made - 1), MAX_DELAY)
    factor = JITTER_LOW + (1 - JITTER_LOW) * min(max(jitter, 0.0), 1.0)
    return dt.timedelta(seconds=round(base.total_seconds() * factor, 3))


def next_attempt_at(attempts_made: int, now: dt.datetime, jitter: float) -> dt.datetime | None:
    """When to try again after a failed attempt, or None: give up (status failed)."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    return now + retry_delay(attempts_made, jitter)


@dataclass(frozen=True)
class AttemptOutcome:
    delivered: bool
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class DeliveryReport:
    """What one delivery run did."""

    attempted: int
    delivered: int
    retrying: int
    failed: int

    def to_json(self) -> dict[str, int]:
        return {
            "attempted": self.attempted,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
        }


def send_one(
    client: httpx.Client,
    *,
    url: str,
    secret: str,
    msg_id: str,
    body: str,
    allow_private: bool,
    resolve: Resolver = resolve_host,
    sent_at: Callable[[], dt.datetime] = utc_now,
) -> AttemptOutcome:
    """POST one signed message; never raises for the receiver's failures.

    NOTE: webhook-timestamp is the instant of sending (`sent_at`), not the run's scheduling
    `now`: receivers reject timestamps far from their own clock (5 minutes by default).
    """
    host = urlsplit(url).hostname or ""
    if not allow_private:
        refused = private_addresses(host, resolve)
        if refused:
            return AttemptOutcome(False, None, f"refused: {host} resolves to {', '.join(refused)}")
    headers = {
        **signed_headers(secret, msg_id, sent_at(), body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    try:
        response = client.post(url, content=body.encode(), headers=headers)
    except httpx.TimeoutException as exc:
        return AttemptOutcome(False, None, _short(f"timeout: {type(exc).__name__}: {exc}"))
    except httpx.HTTPError as exc:
        return AttemptOutcome(False, None, _short(f"{type(exc).__name__}: {exc}"))
    code = response.status_code
    if 200 <= code < 300:
        return AttemptOutcome(True, code, None)
    if response.is_redirect:
        location = response.headers.get("location", "")
        return AttemptOutcome(
            False, code, _short(f"HTTP {code}: redirect to {location!r} not followed")
        )
    return AttemptOutcome(False, code, _short(f"HTTP {code}: {response.text}"))


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def make_client() -> httpx.Client:
    """The outbound client: timeouts, no redirects, no proxies or env credentials."""
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False)


def deliver_due(
    engine: Engine,
    *,
    now: dt.datetime,
    allow_private: bool,
    box: SecretBox,
    limit: int = 500,
    client: httpx.Client | None = None,
    rng: random.Random | None = None,
    resolve: Resolver = resolve_host,
) -> DeliveryReport:
    """Send every delivery due at `now` (up to `limit`) and record each outcome; `box`
    opens the endpoints' sealed secrets (see `endpoints.endpoint_secret_box`)."""
    rng = rng or random.Random()
    with engine.begin() as conn:
        claimed = [
            dict(r)
            for r in conn.execute(
                sql("webhooks/claim_due_deliveries"),
                {"now": now, "lease_until": now + LEASE, "limit": limit},
            ).mappings()
        ]
    owned = client is None
    http = client or make_client()
    delivered = retrying = failed = 0
    try:
        for row in sorted(claimed, key=lambda r: r["id"]):
            outcome = send_one(
                http,
                url=row["url"],
                secret=box.open(row["secret_ciphertext"]),
                msg_id=row["event_id"],
                body=message_body(row["type"], row["occurred_at"], _data(row["data"])),
                allow_private=allow_private,
                resolve=resolve,
            )
            with engine.begin() as conn:
                if outcome.delivered:
                    delivered += 1
                    _record_success(conn, row, outcome, now)
                else:
                    retry = next_attempt_at(row["attempts"], now, rng.random())
                    if retry is None:
                        failed += 1
                    else:
                        retrying += 1
                    _record_failure(conn, row, outcome, retry)
    finally:
        if owned:
            http.close()
    return DeliveryReport(len(claimed), delivered, retrying, failed)


def _data(value: Any) -> Mapping[str, Any]:
    assert isinstance(value, dict)
    return value


def _record_success(
    conn: sa.Connection, row: Mapping[str, Any], outcome: AttemptOutcome, now: dt.datetime
) -> None:
    conn.execute(
        sql("webhooks/record_delivery_success"),
        {
            "delivery_id": row["id"],
            "attempts": row["attempts"],
            "now": now,
            "status_code": outcome.status_code,
        },
    )


def _record_failure(
    conn: sa.Connection,
    row: Mapping[str, Any],
    outcome: AttemptOutcome,
    retry: dt.datetime | None,
) -> None:
    conn.execute(
        sql("webhooks/record_delivery_failure"),
        {
            "delivery_id": row["id"],
            "attempts": row["attempts"],
            "next_attempt_at": retry,
            "status_code": outcome.status_code,
            "error": outcome.error,
        },
    )
