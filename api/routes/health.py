"""Liveness, readiness and metrics: no key needed (operations, load balancers, Prometheus)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from api.state import ApiState, api_state
from tallyflow.core.sqlfiles import sql

router = APIRouter(tags=["operations"])


@router.get("/healthz", openapi_extra={"security": []})
async def healthz() -> dict[str, str]:
    """The process answers (liveness; touches nothing else)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "Not ready: the reason in detail"}},
    openapi_extra={"security": []},
)
async def readyz(state: Annotated[ApiState, Depends(api_state)]) -> JSONResponse:
    """200 when the database answers and the quota snapshot is fresh; 503 otherwise."""

    def ping() -> None:
        with state.engine.connect() as conn:
            conn.execute(sql("ops/select_health"))

    try:
        await run_in_threadpool(ping)
    except Exception as exc:
        return JSONResponse(
            status_code=503,
            content={"detail": f"database unreachable: {type(exc).__name__}", "code": "db_down"},
        )
    age = state.snapshot_age()
    limit = state.settings.snapshot_max_age_seconds
    if age > limit:
        return JSONResponse(
            status_code=503,
            content={
                "detail": f"quota snapshot is {age:.0f} s old (limit {limit:g} s)",
                "code": "snapshot_stale",
            },
        )
    return JSONResponse({"status": "ready", "snapshot_age_seconds": round(age, 3)})


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(state: Annotated[ApiState, Depends(api_state)]) -> Response:
    """Prometheus text format."""
    body = await run_in_threadpool(state.metrics.render)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
