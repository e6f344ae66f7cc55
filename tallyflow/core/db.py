"""Database access: the URL (configured or embedded Postgres), engines, raw psycopg connections."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tallyflow.core.settings import Settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def embedded_database_url(settings: Settings) -> str:
    """Start (or reuse) the embedded Postgres under TALLYFLOW_HOME and return its URL.

    NOTE: cleanup_mode=None leaves the server running when this process exits, so the
    next command reuses it in milliseconds instead of starting it again.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        home = settings.home_path
        home.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(home / "pg", cleanup_mode=None)  # type: ignore[attr-defined]
        uri: str = server.get_uri()
    return to_sqlalchemy_url(uri)


def to_sqlalchemy_url(url: str) -> str:
    """Normalise a libpq-style URL to the psycopg 3 SQLAlchemy dialect."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def to_libpq_url(url: str) -> str:
    """The same URL as psycopg.connect() takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return to_sqlalchemy_url(settings.database_url)
    return embedded_database_url(settings)


def get_engine(settings: Settings) -> Engine:
    """One engine (and pool) per database URL per process."""
    url = database_url(settings)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            _engines[url] = engine
        return engine


def api_engine(settings: Settings) -> Engine:
    """The API process's own engine: every session has `statement_timeout` set, so one slow
    or hostile request cannot hold a connection and its locks for long.

    NOTE: separate from `get_engine`'s (CLI, flows): long runs keep no timeout."""
    options = f"-c statement_timeout={settings.api_statement_timeout_ms}"
    return sa.create_engine(
        database_url(settings),
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"options": options},
    )


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def driver_connection(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy connection (for COPY), inside a transaction
    SQLAlchemy began (`conn.begin()`, or a `conn.execute` before): what is sent on it then
    commits or rolls back with that transaction. Outside one, `Connection.commit()` would do
    nothing and the driver's own transaction would stay open (the key-index lookup once
    leaked its scratch rows into the next lookup that way), so that is refused."""
    if not conn.in_transaction():
        raise RuntimeError(
            "driver_connection outside a SQLAlchemy transaction: begin one (conn.begin())"
            " so that its commit is the driver's"
        )
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    return raw


@contextmanager
def transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A connection inside one transaction: committed on success, rolled back on error."""
    with engine.begin() as conn:
        yield conn
