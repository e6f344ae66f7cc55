"""Grace period and finalization (contract 5.1); unpriceable tenants; schema in sync."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from models.tables import Base
from services.invoicing import finalize_invoices, generate_invoices, list_invoices
from tests.services.test_invoicing import add_usage, seed_basic

NOV = BillingPeriod.parse("2026-11")
AT = dt.datetime(2026, 12, 4, 4, 0, tzinfo=dt.UTC)


def _finalize(engine: Engine, as_of: str) -> object:
    return finalize_invoices(engine, as_of=dt.date.fromisoformat(as_of), grace_days=3, now=AT)


def test_finalize_waits_for_the_grace_days_then_closes_every_draft(engine: Engine) -> None:
    seed_basic(engine)
    with engine.begin() as conn:
        generate_invoices(conn, NOV)
    early = _finalize(engine, "2026-12-03")  # Dec 1 + 3 days > Dec 3
    assert (early.closed, early.invoice_ids) == (0, ())  # type: ignore[attr-defined]
    # usage arriving within the grace period is refreshed onto the draft before closing
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-30", "100")
    done = _finalize(engine, "2026-12-04")
    assert done.closed == 3 and [p.label for p in done.periods] == ["2026-11"]  # type: ignore[attr-defined]
    with engine.connect() as conn:
        (acme,) = list_invoices(conn, "acme", period=NOV)
    assert (acme.status, acme.total, acme.number) == ("closed", D("56.01"), "INV-2026-000001")
    assert _finalize(engine, "2026-12-05").closed == 0  # type: ignore[attr-defined]

    # late usage beyond the grace period: the next finalize closes an adjustment
    with engine.begin() as conn:
        add_usage(
            conn,
            "acme",
            "api.calls",
            "2026-11-29",
            "200",
            updated_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
        )
    late = _finalize(engine, "2026-12-07")
    assert late.closed == 1  # type: ignore[attr-defined]
    with engine.connect() as conn:
        docs = sorted(list_invoices(conn, "acme", period=NOV), key=lambda i: i.id)
    assert [(d.kind, d.status, d.total) for d in docs] == [
        ("invoice", "closed", D("56.01")),
        ("adjustment", "closed", D("2.00")),
    ]
    assert docs[0] == acme


def test_one_tenant_that_cannot_be_priced_does_not_fail_the_month(engine: Engine) -> None:
    seed_basic(engine)
    with engine.begin() as conn:  # 10^30 calls x 0.01 = 10^28: beyond NUMERIC(24, 6)
        add_usage(conn, "beta", "api.calls", "2026-11-20", "1" + "0" * 30, quantity_max="1")
        result = generate_invoices(conn, NOV)
    assert result.skipped_tenants == {"beta": "amount_out_of_range"}
    assert result.unpriceable == {"beta": "amount_out_of_range"}
    assert "beta" in result.skip_messages["beta"]
    assert result.generated == 2  # acme and nihon are invoiced
    with engine.connect() as conn:
        assert list_invoices(conn, "beta", period=NOV) == []


def test_models_match_the_migrated_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    invoicing = [d for d in diff if "invoice" in repr(d)]
    assert invoicing == []


def test_finalize_reads_under_the_shared_usage_lock(engine: Engine) -> None:
    from services.job_runs import USAGE_LOCK_KEY

    seed_basic(engine)
    with engine.begin() as conn:
        generate_invoices(conn, NOV)
    # an exclusive holder (an ingest) makes a try of the shared lock fail; after finalize
    # released its session locks, an ingest can take the lock at once
    _finalize(engine, "2026-12-04")
    with engine.connect() as conn:
        assert conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": USAGE_LOCK_KEY}
        ).scalar_one()
        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": USAGE_LOCK_KEY})
