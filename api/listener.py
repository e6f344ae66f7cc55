"""LISTEN/NOTIFY: keeps the in-process quota snapshot and key cache current.

Writers send `NOTIFY tallyflow_quota_usage` (payload {"tenant_ids": [...] | null}) inside
the transaction that refreshes quota_usage, and `NOTIFY tallyflow_api_keys` when a key is
created or revoked; Postgres delivers them at commit. This thread LISTENs before the first
load (so nothing committed after the load is missed) and, after a lost connection, reloads
everything (notifications sent meanwhile are gone).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from services.api_keys import NOTIFY_CHANNEL as KEYS_CHANNEL
from services.quota import NOTIFY_CHANNEL as QUOTA_CHANNEL

log = logging.getLogger("tallyflow.api.listener")

QuotaCallback = Callable[[Iterable[str] | None], None]


class ChangeListener:
    def __init__(self, url: str, *, on_quotas: QuotaCallback, on_keys: Callable[[], None]) -> None:
        self._url = url
        self._on_quotas = on_quotas
        self._on_keys = on_keys
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None

    def listen(self) -> None:
        """Connect and LISTEN (call before the first load)."""
        conn = psycopg.connect(self._url, autocommit=True)
        conn.execute(f"LISTEN {QUOTA_CHANNEL}")
        conn.execute(f"LISTEN {KEYS_CHANNEL}")
        self._conn = conn

    def start(self) -> None:
        if self._conn is None:
            self.listen()
        self._thread = threading.Thread(target=self._run, name="tallyflow-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._conn is not None:
            self._conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain()
            except (psycopg.OperationalError, psycopg.InterfaceError):
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                self._reconnect()
            except Exception:  # a failed reload must not kill the listener
                log.exception("reloading after a notification failed")
                time.sleep(0.5)

    def _drain(self) -> None:
        """Wait for notifications, then handle everything pending as one batch."""
        conn = self._conn
        assert conn is not None
        batch = list(conn.notifies(timeout=0.5, stop_after=1))
        if not batch:
            return
        # NOTE: whatever else is already queued joins this batch (one reload for a burst).
        batch.extend(conn.notifies(timeout=0.001))
        tenants: set[str] | None = set()
        keys_changed = False
        for note in batch:
            if note.channel == KEYS_CHANNEL:
                keys_changed = True
                continue
            try:
                named = json.loads(note.payload).get("tenant_ids")
            except (ValueError, AttributeError):
                named = None
            if named is None or tenants is None:
                tenants = None
            else:
                tenants.update(named)
        if keys_changed:
            self._on_keys()
        if tenants is None or tenants:
            self._on_quotas(tenants)

    def _reconnect(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                if self._conn is not None:
                    self._conn.close()
                self.listen()
                self._on_quotas(None)
                self._on_keys()
                return
            except Exception:
                log.warning("reconnect failed; retrying in %.1fs", delay, exc_info=True)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
