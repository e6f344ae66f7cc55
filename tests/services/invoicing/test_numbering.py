"""Gapless numbers (contract 5.3) on a real Postgres: concurrency, rollbacks, year boundary."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from services.invoicing import (
    NumberingRule,
    close_invoice,
    close_period_invoices,
    generate_invoices,
    void_invoice,
)
from tests.services.test_invoicing import PER_UNIT, add_usage, seed_plan, subscribe

NOV = BillingPeriod.parse("2026-11")
DEC = BillingPeriod.parse("2026-12")
CLOSE_AT = dt.datetime(2026, 12, 4, 4, 0, tzinfo=dt.UTC)


def seed_tenants(engine: Engine, n: int, period: BillingPeriod = NOV) -> list[int]:
    """n tenants t00..t(n-1) on one plan; returns the ids of their drafts for `period`."""
    with engine.begin() as conn:
        plan = seed_plan(conn, "pro", base_fee="10.00", quotas={"api.calls": {"pricing": PER_UNIT}})
        for i in range(n):
            subscribe(conn, f"t{i:02d}", plan, "2026-01-01")
            add_usage(conn, f"t{i:02d}", "api.calls", f"{period.start:%Y-%m}-05", str(i))
    with engine.begin() as conn:
        return generate_invoices(conn, period).invoice_ids


def numbers(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT number FROM invoices WHERE number IS NOT NULL ORDER BY number")
            ).scalars()
        )


def test_twenty_concurrent_closes_use_1_to_20(engine: Engine) -> None:
    ids = seed_tenants(engine, 20)
    barrier = threading.Barrier(len(ids))
    errors: list[BaseException] = []
    # NOTE: a pool as large as the threads: each holds its own session at the barrier
    wide = sa.create_engine(engine.url, pool_size=len(ids), max_overflow=0)

    def close(invoice_id: int) -> None:
        try:
            with wide.connect() as conn:  # one connection (session) per thread
                barrier.wait(timeout=60)
                with conn.begin():
                    close_invoice(conn, invoice_id, now=CLOSE_AT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=close, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    wide.dispose()
    assert not errors
    assert numbers(engine) == [f"INV-2026-{n:06d}" for n in range(1, 21)]
    with engine.connect() as conn:
        counter = conn.execute(
            sa.text("SELECT series, year, last_number FROM invoice_number_counters")
        ).all()
    assert [tuple(r) for r in counter] == [("INV", 2026, 20)]


def test_a_close_that_rolls_back_leaves_no_gap(engine: Engine) -> None:
    first, second, third = seed_tenants(engine, 3)
    with engine.begin() as conn:
        close_invoice(conn, first, now=CLOSE_AT)
    # the caller's transaction fails after the close: number 2 is given back
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert close_invoice(conn, second, now=CLOSE_AT).number == "INV-2026-000002"
        raise RuntimeError("the request failed after closing")
    with engine.begin() as conn:
        assert close_invoice(conn, third, now=CLOSE_AT).number == "INV-2026-000002"
        assert close_invoice(conn, second, now=CLOSE_AT).number == "INV-2026-000003"
    assert numbers(engine) == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]


def test_a_period_close_failing_halfway_in_the_database_leaves_no_gap(engine: Engine) -> None:
    seed_tenants(engine, 4)
    # NOTE: a trigger that refuses closing t02's invoice: the period close numbers t00 and
    # t01 first (tenant order), then the statement fails and everything rolls back.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse_t02() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF NEW.status = 'closed' AND NEW.tenant_id = 't02' THEN"
                " RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF;"
                " RETURN NEW; END; $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse_t02 BEFORE UPDATE ON invoices FOR EACH ROW"
                " EXECUTE FUNCTION refuse_t02()"
            )
        )
    with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
        close_period_invoices(conn, NOV, now=CLOSE_AT)
    assert getattr(info.value.orig, "sqlstate", None) == "23514"
    assert numbers(engine) == []
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER refuse_t02 ON invoices"))
        assert len(close_period_invoices(conn, NOV, now=CLOSE_AT)) == 4
    assert numbers(engine) == [f"INV-2026-{n:06d}" for n in range(1, 5)]


def test_numbers_restart_each_utc_year(engine: Engine) -> None:
    ids = seed_tenants(engine, 3, DEC)
    last_instant = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    # 2027-01-01 00:30 in UTC is still 2026-12-31 in New York: the UTC year counts
    first_of_year = dt.datetime(2026, 12, 31, 19, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    with engine.begin() as conn:
        a = close_invoice(conn, ids[0], now=last_instant)
        b = close_invoice(conn, ids[1], now=first_of_year)
        c = close_invoice(conn, ids[2], now=first_of_year + dt.timedelta(days=3))
    assert (a.number, b.number, c.number) == (
        "INV-2026-000001",
        "INV-2027-000001",
        "INV-2027-000002",
    )
    assert b.closed_at == first_of_year  # closed_at is the injected instant


def test_voiding_frees_no_number_and_prefixes_are_settings(engine: Engine) -> None:
    ids = seed_tenants(engine, 2)
    rule = NumberingRule(invoice_prefix="ACME", credit_note_prefix="ACN")
    with engine.begin() as conn:
        first = close_invoice(conn, ids[0], now=CLOSE_AT, numbering=rule)
        void_invoice(conn, first.id, now=CLOSE_AT)
        second = close_invoice(conn, ids[1], now=CLOSE_AT, numbering=rule)
    assert (first.number, second.number) == ("ACME-2026-000001", "ACME-2026-000002")


def test_prefix_settings_are_validated() -> None:
    from pydantic import ValidationError

    from tallyflow.core.settings import Settings

    assert NumberingRule.of(Settings(invoice_prefix="F", credit_note_prefix="G")) == NumberingRule(
        "F", "G"
    )
    with pytest.raises(ValidationError):
        Settings(invoice_prefix="inv-1")
