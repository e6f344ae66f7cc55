"""The API's outer ring (pure ASGI, in front of every route): request id, authentication
before any body byte is read, a byte-counting body cap, a deadline for slow uploads,
latency metrics and one JSON log line per request.

Order per request:
1. `x-request-id` taken from the request (when sane) or made, echoed on the answer.
2. Paths under /api/: the key is checked from the headers alone (401 without reading the
   body); the Principal is left in the scope for `api.auth.require_scope`.
3. Content-Length over the route's cap: 413 at once. Otherwise the body is read here, bytes
   counted (chunked uploads included: a missing or lying Content-Length changes nothing),
   413 as soon as the count passes the cap, 408 when it does not arrive in time; the route
   then reads the buffered body.

NOTE: buffering costs nothing extra: every route reads its whole body anyway, and the cap
bounds it; reading it here is what lets the cap hold whatever the route does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import PRINCIPAL_KEY, principal_of
from api.errors import error_response
from api.state import ApiState
from tallyflow.core.errors import PayloadTooLarge, TallyflowError

log = logging.getLogger("tallyflow.api.access")

INGEST_PATH = "/api/billing/usage:ingest"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestTimeout(TallyflowError):
    code = "request_timeout"
    status = 408


class Guard:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            replay = await self._admit(scope, receive, headers)
            if isinstance(replay, TallyflowError):
                await error_response(replay)(scope, receive, send_with_id)
            else:
                await self.app(scope, replay, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            _state_of(scope).metrics.observe_request(
                scope["method"], template, status["code"], elapsed
            )
            _log_request(scope, request_id, template, status["code"], elapsed)

    async def _admit(
        self, scope: Scope, receive: Receive, headers: dict[str, str]
    ) -> Receive | TallyflowError:
        """A receive replaying the checked body, or the error to answer instead."""
        path: str = scope["path"]
        state = _state_of(scope)
        try:
            if path not in PUBLIC_PATHS:
                principal = await principal_of(state, headers.get("authorization", ""))
                scope[PRINCIPAL_KEY] = principal
            cap = (
                state.settings.ingest_body_cap_bytes
                if path == INGEST_PATH
                else state.settings.body_cap_bytes
            )
            length = headers.get("content-length")
            if length is not None and length.strip().isdigit() and int(length) > cap:
                raise PayloadTooLarge(f"body over {cap} bytes", code="body_too_large")
            body = await _read_capped(receive, cap, state.settings.body_read_timeout_seconds)
        except TallyflowError as exc:
            return exc
        return _replay(body, receive)


def _state_of(scope: Scope) -> ApiState:
    app: Any = scope["app"]
    state: ApiState = app.state.tallyflow
    return state


async def _read_capped(receive: Receive, cap: int, timeout: float) -> bytes:
    """The whole body, counted as it arrives; PayloadTooLarge past `cap`, RequestTimeout
    when the client has not sent it all within `timeout` seconds (a slow upload)."""
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            message = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
        except TimeoutError:
            raise RequestTimeout(f"the body did not arrive within {timeout:g} s") from None
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"body over {cap} bytes", code="body_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # NOTE: after the body, only the disconnect is left

    return replay


def _log_request(scope: Scope, request_id: str, route: str, status: int, elapsed: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    principal = scope.get(PRINCIPAL_KEY)
    log.info(
        json.dumps(
            {
                "event": "request",
                "request_id": request_id,
                "method": scope["method"],
                "route": route,
                "status": status,
                "ms": round(elapsed * 1000, 3),
                "key": getattr(principal, "name", None),
            }
        )
    )
