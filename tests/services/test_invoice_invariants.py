"""Invoice rules the database itself holds, and the ones regeneration must respect: at most
one live (non-void) invoice per tenant and period, and a void invoice never touched again."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.invoicing import generate_invoices, get_invoice, void_invoice
from tests.helpers import rows
from tests.services.test_invoicing import NOV, _invoice_of, add_usage, seed_basic

# NOTE: a copy of an existing invoice head under another id, with the fields its status
# requires (a fresh number when closed, voided_at when void), so that the row passes every
# check constraint and only the one-live-invoice index can refuse it.
COPY_INVOICE = """
INSERT INTO invoices (tenant_id, period_start, period_end, currency, status, number, total,
                      closed_at, voided_at, run_id)
SELECT tenant_id, period_start, period_end, currency, :status,
       CASE WHEN :status = 'closed' THEN 'TEST-' || gen_random_uuid() END, total,
       CASE WHEN :status = 'closed' THEN now() END,
       CASE WHEN :status = 'void' THEN now() END, run_id
FROM invoices WHERE id = :id
"""


def _insert_copy(engine: Engine, invoice_id: int, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(COPY_INVOICE), {"id": invoice_id, "status": status})


@pytest.mark.parametrize(
    "status",
    [
        "draft",  # a second draft for the same tenant and period
        "closed",  # a closed one beside a live draft
    ],
)
def test_database_refuses_a_second_live_invoice(engine: Engine, status: str) -> None:
    seed_basic(engine)
    with engine.begin() as conn:
        generate_invoices(conn, NOV)
    acme = _invoice_of(engine, "acme")
    with pytest.raises(sa.exc.IntegrityError) as info:
        _insert_copy(engine, acme.id, status)
    assert getattr(info.value.orig, "sqlstate", None) == "23505"  # unique_violation
    assert "uq_invoices_tenant_period_live" in str(info.value.orig)
    count = rows(engine, "SELECT count(*) FROM invoices WHERE tenant_id = 'acme'")
    assert count == [(1,)]


def test_a_void_invoice_does_not_count_as_live(engine: Engine) -> None:
    seed_basic(engine)
    with engine.begin() as conn:
        generate_invoices(conn, NOV)
    acme = _invoice_of(engine, "acme")
    _insert_copy(engine, acme.id, "void")  # voids are kept beside the live one
    with engine.begin() as conn:
        void_invoice(conn, acme.id)
    _insert_copy(engine, acme.id, "draft")  # after a void, a fresh live one is allowed
    statuses = rows(
        engine, "SELECT status, count(*) FROM invoices WHERE tenant_id = 'acme' GROUP BY 1"
    )
    assert sorted(statuses) == [("draft", 1), ("void", 2)]


def _snapshot(engine: Engine, invoice_id: int) -> tuple[Any, ...]:
    """Head (every column) and lines (every column) of one invoice."""
    head = rows(engine, f"SELECT * FROM invoices WHERE id = {int(invoice_id)}")
    lines = rows(
        engine,
        f"SELECT * FROM invoice_lines WHERE invoice_id = {int(invoice_id)} ORDER BY line_no",
    )
    return (head, lines)


def test_regeneration_leaves_a_void_invoice_untouched(engine: Engine) -> None:
    seed_basic(engine)
    with engine.begin() as conn:
        generate_invoices(conn, NOV)
    beta = _invoice_of(engine, "beta")
    with engine.begin() as conn:
        void_invoice(conn, beta.id)  # a voided draft
    before = _snapshot(engine, beta.id)
    assert before[1], "the void invoice has lines to compare"

    # late usage for beta, then the period is regenerated twice (and closed)
    with engine.begin() as conn:
        add_usage(conn, "beta", "api.calls", "2026-11-25", "700")
    for close in (False, True):
        with engine.begin() as conn:
            generate_invoices(conn, NOV, close=close)

    assert _snapshot(engine, beta.id) == before  # every column, updated_at included
    with engine.connect() as conn:
        void = get_invoice(conn, beta.id)
    assert void.status == "void" and void.number is None
    fresh = _invoice_of(engine, "beta")  # the correction path: a new invoice
    assert fresh.id != beta.id and fresh.status == "closed"
    assert fresh.total > beta.total
    assert sum((li.amount for li in fresh.lines), D(0)) == fresh.total
