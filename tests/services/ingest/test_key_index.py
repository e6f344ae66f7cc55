"""The key index lookup (services/ingest/dedupe.py `KeyIndex`) against a real Postgres:
each lookup answers for its own batch only, however many came before on the connection."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.ingest.dedupe import KEY, VERSION_SCHEMA, KeyIndex
from tallyflow.core.db import driver_connection

AT = dt.datetime(2026, 10, 3, 12, 0, tzinfo=dt.UTC)


def _index(engine: Engine, rows: list[tuple[str, str, str, int]]) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO event_keys (tenant_id, event_id, metric, quantity_micros, occurred_at)"
                " VALUES (:t, :e, :m, :q, :at)"
            ),
            [{"t": t, "e": e.encode(), "m": m, "q": q, "at": AT} for t, e, m, q in rows],
        )


def _keys(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(pairs, schema=list(KEY), orient="row")


def test_successive_lookups_answer_for_their_own_batch(engine: Engine) -> None:
    _index(engine, [("t-a", "e1", "api.calls", 1_000_000), ("t-a", "e2", "storage", 5)])
    with engine.connect() as conn:
        index = KeyIndex(conn)
        first = index.versions(_keys(("t-a", "e1"), ("t-a", "e9")))
        # the second batch: e2 at position 1 (as e9 was), e7 at position 0 (as e1 was)
        second = index.versions(_keys(("t-a", "e7"), ("t-a", "e2")))
        third = index.versions(_keys(("t-b", "e1")))
    assert first.rows() == [("t-a", "e1", "api.calls", 1_000_000, AT)]
    assert second.rows() == [("t-a", "e2", "storage", 5, AT)]
    assert third.height == 0
    assert second.schema == VERSION_SCHEMA


def test_a_lookup_leaves_no_transaction_open(engine: Engine) -> None:
    """The scratch rows go with a real commit: the connection is idle between lookups."""
    _index(engine, [("t-a", "e1", "api.calls", 1)])
    with engine.connect() as conn:
        index = KeyIndex(conn)
        index.versions(_keys(("t-a", "e1")))
        with engine.connect() as probe:
            states = (
                probe.execute(
                    sa.text("SELECT state FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": conn.connection.driver_connection.info.backend_pid},  # type: ignore[union-attr]
                )
                .scalars()
                .all()
            )
    assert states == ["idle"]


def test_the_driver_connection_is_refused_outside_a_transaction(engine: Engine) -> None:
    """The mechanism behind the lookup's fix: COPY on the driver connection only where
    SQLAlchemy's commit is the driver's."""
    with engine.connect() as conn:
        with pytest.raises(RuntimeError, match="outside a SQLAlchemy transaction"):
            driver_connection(conn)
        with conn.begin():
            assert driver_connection(conn) is conn.connection.driver_connection
        conn.execute(sa.text("SELECT 1"))  # autobegin: a transaction SQLAlchemy began
        assert driver_connection(conn) is conn.connection.driver_connection
