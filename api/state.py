"""What the API process holds: settings, the engine, the quota snapshot and the key cache."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.engine import Engine

from api.metrics import ApiMetrics
from services.api_keys import ApiKeyCache
from services.quota import QuotaSnapshot
from tallyflow.core.clock import utc_today
from tallyflow.core.settings import Settings


@dataclass
class ApiState:
    settings: Settings
    engine: Engine
    snapshot: QuotaSnapshot = field(default_factory=QuotaSnapshot)
    keys: ApiKeyCache = field(default_factory=ApiKeyCache)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    quotas_loaded_at: float = 0.0  # time.time() of the last full snapshot load

    def reload_quotas(self, tenant_ids: Iterable[str] | None, today: dt.date | None = None) -> None:
        """Reload the snapshot (all tenants, or the given ones) from committed data.

        NOTE: REPEATABLE READ: the subscription windows and the quota rows come from one
        snapshot of the database, never from either side of a concurrent commit.
        """
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            self.snapshot.reload(conn, today=today or utc_today(), tenant_ids=tenant_ids)
        if tenant_ids is None:
            self.quotas_loaded_at = time.time()
            # NOTE: a full collection walks every object; with 50,000 quota rows (and the
            # libraries) that took ~120 ms here, a stall felt by every request in flight.
            # Collect now (once per full reload), then freeze the survivors: frozen objects
            # are skipped by later collections. The snapshot has no reference cycles, so an
            # old one is still freed by reference counting when replaced; the app's
            # shutdown unfreezes everything.
            gc.collect()
            gc.freeze()

    def reload_keys(self) -> None:
        with self.engine.connect() as conn:
            self.keys.reload(conn)

    def snapshot_age(self) -> float:
        return time.time() - self.quotas_loaded_at if self.quotas_loaded_at else float("inf")


log = logging.getLogger("tallyflow.api")


class PeriodicReload:
    """Every `snapshot_reload_seconds`: write the keys' last use, reload keys and quotas.

    NOTE: NOTIFY keeps both current within milliseconds; this bounds how stale they get
    when a notification is lost (a listener reconnect, a change made with NOTIFY off),
    and it is what makes /readyz's freshness meaningful.
    """

    def __init__(self, state: ApiState) -> None:
        self._state = state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tallyflow-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush_used()

    def flush_used(self) -> None:
        try:
            with self._state.engine.begin() as conn:
                self._state.keys.flush_used(conn)
        except Exception:  # NOTE: best effort: a lost last-use stamp is no harm
            log.warning("could not record API keys' last use", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self._state.settings.snapshot_reload_seconds):
            self.flush_used()
            try:
                self._state.reload_keys()
                self._state.reload_quotas(None)
            except Exception:
                log.warning("periodic reload failed; keeping the previous snapshot", exc_info=True)


async def api_state(request: Request) -> ApiState:
    """FastAPI dependency: the process's ApiState.

    NOTE: async on purpose: FastAPI runs a sync dependency in a worker thread, which cost
    the quota check most of its time.
    """
    state: ApiState = request.app.state.tallyflow
    return state
