"""The tallyflow HTTP API (contract section 6).

Sync or async: the endpoints that use the database are plain `def` (FastAPI runs them in
its thread pool) over the process's one SQLAlchemy engine, the same sync engine and
services the CLI and flows use. The quota check, the hot path, is `async` and does no I/O:
it reads the in-process quota snapshot (see services/quota.py).

NOTE: nothing on this import path imports Prefect: `tallyflow serve` starts without the
2+ s Prefect import and the API process stays small.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from api.auth import bearer_security_openapi
from api.errors import error_schema_openapi, install_error_handlers
from api.guard import Guard
from api.listener import ChangeListener
from api.routes import (
    audit,
    health,
    invoices,
    metrics,
    overrides,
    plans,
    quotas,
    spend,
    subscriptions,
    usage,
    webhooks,
)
from api.state import ApiState, PeriodicReload
from services.ingest.inbox import warm_up
from services.webhooks.endpoints import endpoint_secret_box
from tallyflow.core.db import api_engine, database_url, to_libpq_url
from tallyflow.core.settings import Settings, load_settings

log = logging.getLogger("tallyflow.api")


def check_secret_key(engine: Engine, settings: Settings) -> None:
    """Refuse to start when webhook endpoints exist and TALLYFLOW_SECRET_KEY is unset, bad,
    or does not open their secrets (SecretKeyError): signing would fail at every delivery.
    `tallyflow serve` makes this check before uvicorn starts (exit 2 with the message)."""
    with engine.connect() as conn:
        endpoint_secret_box(conn, settings.secret_key_text)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine, the quota snapshot and the key cache live for its lifespan."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ApiState(settings=settings, engine=api_engine(settings))
        check_secret_key(state.engine, settings)
        state.metrics.watch_database(lambda: state.engine, lambda: state.quotas_loaded_at)
        listener = ChangeListener(
            to_libpq_url(database_url(settings)),
            on_quotas=state.reload_quotas,
            on_keys=state.reload_keys,
        )
        # NOTE: LISTEN first, then load: a change committed after the load is notified.
        listener.listen()
        state.reload_quotas(None)
        state.reload_keys()
        listener.start()
        reload = PeriodicReload(state)
        reload.start()
        threading.Thread(target=warm_up, name="tallyflow-warm-up", daemon=True).start()
        log.info("quota snapshot loaded: %d rows", len(state.snapshot))
        app.state.tallyflow = state
        try:
            yield
        finally:
            reload.stop()
            listener.stop()
            state.engine.dispose()
            gc.unfreeze()  # see ApiState.reload_quotas

    app = FastAPI(
        title="tallyflow",
        summary="Usage metering, quotas and billing",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    bearer_security_openapi(app)
    error_schema_openapi(app)
    # NOTE: quotas first: the hot quota check is matched before the other routes.
    routers = (
        quotas,
        plans,
        subscriptions,
        overrides,
        usage,
        invoices,
        metrics,
        audit,
        health,
        spend,
        webhooks,
    )
    for module in routers:
        app.include_router(module.router)
    app.router.routes[:0] = quotas.fast_routes()
    # NOTE: outermost of our code: a request is authenticated and its body capped before
    # any route (or FastAPI's body parsing) sees it.
    app.add_middleware(Guard)
    return app
