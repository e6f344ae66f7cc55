"""Errors as JSON `{"detail": ...}`: every domain error maps to its status in this one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tallyflow.core.errors import TallyflowError, Unauthorized

log = logging.getLogger("tallyflow.api")


def error_response(exc: TallyflowError) -> JSONResponse:
    """The answer for a domain error: its status, its message and its stable code."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(
        status_code=exc.status, content={"detail": exc.message, "code": exc.code}, headers=headers
    )


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TallyflowError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field, e.g. "body.quotas.0.pricing: tiers must ascend"."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = "; ".join(
        f"{_location(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')!s}" for e in errors
    )
    cleaned = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
    return JSONResponse(
        status_code=422,
        content={"detail": detail, "code": "invalid_input", "errors": jsonable_encoder(cleaned)},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error", "code": "internal"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TallyflowError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What was wrong, for a person"},
        "code": {"type": "string", "description": "Stable machine-readable code"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def error_schema_openapi(app: FastAPI) -> None:
    """Document the errors as they are answered: {"detail": str, "code": str}, on every
    operation (FastAPI's default 422 schema, a list of details, is not what we send)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Error"] = ERROR_SCHEMA
            schemas["HTTPValidationError"] = ERROR_SCHEMA
            ref = {"$ref": "#/components/schemas/Error"}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.setdefault("responses", {}).setdefault(
                        "default",
                        {"description": "Error", "content": {"application/json": {"schema": ref}}},
                    )
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
