"""What the API process holds: settings, the engine, the quota snapshot and the key cache."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterable
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.engine import Engine
from tallyflow.core.clock import utc_today

from services.api_keys import ApiKeyCache
from services.quota import QuotaSnapshot
from tallyflow.core.settings import Settings


@dataclass
class ApiState:
    settings: Settings
    engine: Engine
    snapshot: QuotaSnapshot = field(default_factory=QuotaSnapshot)
    keys: ApiKeyCache = field(default_factory=ApiKeyCache)

    def reload_quotas(self, tenant_ids: Iterable[str] | None, today: dt.date | None = None) -> None:
        """Reload the snapshot (all tenants, or the given ones) from committed data.

        NOTE: REPEATABLE READ: the subscription windows and the quota rows come from one
        snapshot of the database, never from either side of a concurrent commit.
        """
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            self.snapshot.reload(conn, today=today or utc_today(), tenant_ids=tenant_ids)
        if tenant_ids is None:
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


async def api_state(request: Request) -> ApiState:
    """FastAPI dependency: the process's ApiState.

    NOTE: async on purpose: FastAPI runs a sync dependency in a worker thread, which cost
    the quota check most of its time.
    """
    state: ApiState = request.app.state.tallyflow
    return state
