"""Bearer API keys: `require_scope(scope)` is the dependency every endpoint declares.

401 for a missing, malformed, unknown or revoked key; 403 for a missing scope, and (via
`Principal.check_tenant` / `require_global`) for a tenant key outside its tenant.
NOTE: a tenant key gets 403 on another tenant whether or not that tenant has data, so a
key never learns which other tenants exist.
"""

from __future__ import annotations

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
    """The principal of the request's key (no DB round trip when the key is cached)."""
    state: ApiState = request.app.state.tallyflow
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("missing API key (Authorization: Bearer <key>)", code="missing_key")
    prefix = key_prefix(key)
    record = None
    if prefix is not None:
        record = state.keys.get(prefix)
        if record is None:
            record = await run_in_threadpool(_lookup, state, prefix)
    if not verify(record, key):
        raise Unauthorized("unknown or revoked API key", code="invalid_key")
    assert record is not None
    return Principal.of(record)


def _lookup(state: ApiState, prefix: str) -> ApiKeyRecord | None:
    with state.engine.connect() as conn:
        return state.keys.lookup(conn, prefix)


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the Principal if its key carries `scope` (401/403 otherwise)."""

    # NOTE: the dependency reads the header itself, with no sub-dependencies: FastAPI's
    # dependency solving was the largest cost of a quota check. The bearer scheme is
    # declared in the OpenAPI document by `bearer_security_openapi` instead.
    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if scope not in principal.scopes:
            raise Forbidden(f"this key lacks the {scope} scope", code="missing_scope")
        return principal

    dependency.__name__ = f"require_{scope.replace('.', '_')}"
    return dependency
