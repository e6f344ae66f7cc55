"""Bearer API keys: `require_scope(scope)` is the dependency every endpoint declares.

401 for a missing, malformed, unknown or revoked key; 403 for a missing scope, and (via
`Principal.check_tenant` / `require_global`) for a tenant key outside its tenant.
NOTE: a tenant key gets 403 on another tenant whether or not that tenant has data, so a
key never learns which other tenants exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from api.state import ApiState
from services.api_keys import ApiKeyRecord, key_prefix, verify
from tallyflow.core.errors import Forbidden, Unauthorized

READ = "billing.read"
WRITE = "billing.write"
USAGE = "usage.write"
PRINCIPAL_KEY = "tallyflow.principal"  # where api.guard leaves the request's Principal

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key from `tallyflow api-key create`",
}


def bearer_security_openapi(app: FastAPI) -> None:
    """Declare the bearer key for every operation in the OpenAPI document (and /docs)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": BEARER_SCHEME}
            schema["security"] = [{"bearer": []}]
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an API key's id, name, scopes and optional tenant restriction."""

    key_id: int
    name: str
    scopes: frozenset[str]
    tenant_id: str | None

    def check_tenant(self, tenant_id: str) -> None:
        """Forbidden for a tenant-restricted key on another tenant."""
        if self.tenant_id is not None and self.tenant_id != tenant_id:
            raise Forbidden(
                f"this key is restricted to tenant {self.tenant_id!r}", code="wrong_tenant"
            )

    def require_global(self) -> None:
        """Forbidden for a tenant-restricted key (plan creation, cross-tenant runs)."""
        if self.tenant_id is not None:
            raise Forbidden(
                "this endpoint needs a key not restricted to a tenant", code="tenant_key"
            )

    @classmethod
    def of(cls, record: ApiKeyRecord) -> Principal:
        return cls(record.id, record.name, frozenset(record.scopes), record.tenant_id)


async def authenticate(request: Request) -> Principal:
    """The principal of the request (set by api.guard before the body was read)."""
    principal = request.scope.get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return principal
    state: ApiState = request.app.state.tallyflow
    principal = await principal_of(state, request.headers.get("authorization", ""))
    request.scope[PRINCIPAL_KEY] = principal
    return principal


async def principal_of(state: ApiState, authorization: str) -> Principal:
    """The principal of an Authorization header value (no DB round trip when the key is
    cached, nor for a bogus key seen before: see ApiKeyCache)."""
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("missing API key (Authorization: Bearer <key>)", code="missing_key")
    prefix = key_prefix(key)
    record = None
    if prefix is not None:
        record = state.keys.get(prefix)
        if record is None and not state.keys.known_unknown(prefix):
            record = await run_in_threadpool(_lookup, state, prefix)
    if not verify(record, key):
        raise Unauthorized("unknown or revoked API key", code="invalid_key")
    assert record is not None
    now = dt.datetime.now(dt.UTC)
    if record.expired(now.date()):
        raise Unauthorized(f"API key expired on {record.expires_on}", code="key_expired")
    state.keys.mark_used(record.id, now)
    return Principal.of(record)


def _lookup(state: ApiState, prefix: str) -> ApiKeyRecord | None:
    with state.engine.connect() as conn:
        return state.keys.lookup(conn, prefix)


def require_scope(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the Principal if its key carries one of `scopes` (401/403
    otherwise). billing.write is also refused to a tenant key (it cannot hold one)."""

    # NOTE: the dependency reads the header itself, with no sub-dependencies: FastAPI's
    # dependency solving was the largest cost of a quota check. The bearer scheme is
    # declared in the OpenAPI document by `bearer_security_openapi` instead.
    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.scopes.intersection(scopes):
            raise Forbidden(f"this key lacks the {' or '.join(scopes)} scope", code="missing_scope")
        if scopes == (WRITE,):
            principal.require_global()
        return principal

    dependency.__name__ = "require_" + "_or_".join(s.replace(".", "_") for s in scopes)
    return dependency
