"""Corrections after close (contract 5.2): pure deltas, then the run on a real Postgres."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from services.invoicing import (
    DraftInvoice,
    DraftLine,
    close_invoice,
    close_period_invoices,
    compute_correction,
    generate_invoices,
    get_invoice,
    list_invoices,
    void_invoice,
)
from tests.services.test_invoicing import add_usage, seed_basic

NOV = BillingPeriod.parse("2026-11")
AT = dt.datetime(2026, 12, 4, 4, 0, tzinfo=dt.UTC)


def line(
    kind: str, metric: str | None, amount: str, quantity: str = "0", sub: int = 1
) -> DraftLine:
    return DraftLine(
        line_no=0,
        kind=kind,
        subscription_id=sub,
        plan_code="pro",
        metric=metric,
        description=f"{kind} {metric}",
        window_start=NOV.start,
        window_end=NOV.end,
        quantity=D(quantity),
        included=D(0),
        billable_quantity=D(quantity),
        pricing_model=None if kind == "base_fee" else "per_unit",
        amount=D(amount),
        breakdown={},
    )


def invoice(*lines: DraftLine) -> DraftInvoice:
    return DraftInvoice("acme", "USD", sum((li.amount for li in lines), D(0)), tuple(lines))


BASE = line("base_fee", None, "30.00", "30")


@pytest.mark.parametrize(
    ("billed", "rerated", "expected"),
    [
        # nothing changed: no correction
        (
            [BASE, line("usage", "calls", "5.00", "500")],
            [BASE, line("usage", "calls", "5.00", "500")],
            None,
        ),
        # quantity moved inside the allowance, amount unchanged: no correction
        (
            [BASE, line("usage", "calls", "0.00", "10")],
            [BASE, line("usage", "calls", "0.00", "90")],
            None,
        ),
        # late usage: one delta line, an adjustment
        (
            [BASE, line("usage", "calls", "5.00", "500")],
            [BASE, line("usage", "calls", "6.00", "600")],
            ("adjustment", "1.00", [("usage", "calls", "100", "1.00")]),
        ),
        # usage re-aggregated lower: a credit note
        (
            [BASE, line("usage", "calls", "5.00", "500")],
            [BASE, line("usage", "calls", "2.00", "200")],
            ("credit_note", "-3.00", [("usage", "calls", "-300", "-3.00")]),
        ),
        # a new metric line
        (
            [BASE],
            [BASE, line("usage", "gb", "4.00", "4")],
            ("adjustment", "4.00", [("usage", "gb", "4", "4.00")]),
        ),
        # a line that is gone is reversed
        (
            [BASE, line("usage", "gb", "4.00", "4")],
            [BASE],
            ("credit_note", "-4.00", [("usage", "gb", "-4", "-4.00")]),
        ),
        # opposite moves summing to zero: still a correction, an adjustment of 0
        (
            [BASE, line("usage", "a", "1.00", "1"), line("usage", "b", "1.00", "1")],
            [BASE, line("usage", "a", "2.00", "2"), line("usage", "b", "0.00", "0")],
            ("adjustment", "0.00", [("usage", "a", "1", "1.00"), ("usage", "b", "-1", "-1.00")]),
        ),
        # billed so far includes an earlier correction: only the new difference
        (
            [BASE, line("usage", "calls", "5.00", "500"), line("usage", "calls", "1.00", "100")],
            [BASE, line("usage", "calls", "7.00", "700")],
            ("adjustment", "1.00", [("usage", "calls", "100", "1.00")]),
        ),
        # a prepaid credit line on the closed invoice is not re-rated away
        (
            [BASE, line("credit", None, "-10.00")],
            [BASE],
            None,
        ),
    ],
)
def test_compute_correction(
    billed: list[DraftLine], rerated: list[DraftLine], expected: Any
) -> None:
    got = compute_correction(invoice(*rerated), 7, billed)
    if expected is None:
        assert got is None
        return
    assert got is not None
    kind, total, lines = expected
    assert (got.kind, got.total, got.corrects_invoice_id) == (kind, D(total), 7)
    assert [(li.kind, li.metric, li.quantity, li.amount) for li in got.lines] == [
        (k, m, D(q), D(a)) for k, m, q, a in lines
    ]
    assert [li.line_no for li in got.lines] == list(range(1, len(lines) + 1))
    # billed + correction == re-rated, per amount
    assert sum(li.amount for li in billed if li.kind != "credit") + got.total == sum(
        li.amount for li in rerated
    )


def test_a_grouped_line_that_is_gone_is_reversed_with_its_group() -> None:
    """A matrix line (billable metric, contract 4a) billed for one group and no longer
    billed: the reversal keeps the group, so it names the line it reverses."""
    gpt = line("usage", "tokens", "4.00", "4")._replace(group={"model": "gpt"})
    llama = line("usage", "tokens", "2.00", "2")._replace(group={"model": "llama"})
    got = compute_correction(invoice(BASE, llama), 7, [BASE, gpt, llama])
    assert got is not None
    assert [(li.metric, li.group, li.quantity, li.amount) for li in got.lines] == [
        ("tokens", {"model": "gpt"}, D(-4), D("-4.00"))
    ]
    assert got.kind == "credit_note"


# --- the run ------------------------------------------------------------------------------


def _generate(engine: Engine, **kw: Any) -> Any:
    with engine.begin() as conn:
        return generate_invoices(conn, NOV, now=AT, **kw)


def _documents(engine: Engine, tenant: str) -> list[Any]:
    with engine.connect() as conn:
        return sorted(list_invoices(conn, tenant, period=NOV, with_lines=True), key=lambda i: i.id)


def _closed_acme(engine: Engine) -> Any:
    seed_basic(engine)
    _generate(engine)
    (acme,) = _documents(engine, "acme")
    with engine.begin() as conn:
        return close_invoice(conn, acme.id, now=AT)


def test_late_usage_goes_on_a_draft_adjustment_never_on_the_closed_invoice(engine: Engine) -> None:
    closed = _closed_acme(engine)
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-21", "100")  # late: +100 calls
    result = _generate(engine)
    (c,) = result.corrections
    assert (c.kind, c.total, c.corrects_invoice_id, c.changed) == (
        "adjustment",
        D("1.00"),
        closed.id,
        True,
    )
    original, adjustment = _documents(engine, "acme")
    assert (original.id, original.status, original.total, original.lines) == (
        closed.id,
        "closed",
        closed.total,
        closed.lines,
    )
    assert (adjustment.kind, adjustment.status, adjustment.corrects_invoice_id) == (
        "adjustment",
        "draft",
        closed.id,
    )
    (delta,) = adjustment.lines
    assert (delta.kind, delta.metric, delta.quantity, delta.billable_quantity, delta.amount) == (
        "usage",
        "api.calls",
        D(100),
        D(100),
        D("1.00"),
    )
    assert delta.breakdown["correction"]["billed_so_far"]["amount"] == "19.01"
    assert delta.breakdown["correction"]["rerated"]["amount"] == "20.01"

    # rerun over the same usage: the same draft, untouched
    again = _generate(engine)
    assert [(x.invoice_id, x.changed) for x in again.corrections] == [(adjustment.id, False)]
    assert _documents(engine, "acme")[1].updated_at == adjustment.updated_at

    # more late usage: the same draft is refreshed in place
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-22", "50")
    refreshed = _generate(engine)
    assert [(x.invoice_id, x.total, x.changed) for x in refreshed.corrections] == [
        (adjustment.id, D("1.50"), True)
    ]

    # the late usage withdrawn: nothing differs any more, the draft goes
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM usage_daily WHERE usage_date IN ('2026-11-21', '2026-11-22')")
        )
    gone = _generate(engine)
    assert gone.corrections == ()
    assert [d.id for d in _documents(engine, "acme")] == [closed.id]


def test_a_closed_correction_counts_as_billed_and_credit_notes_get_their_series(
    engine: Engine,
) -> None:
    closed = _closed_acme(engine)
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-21", "100")
    _generate(engine)
    with engine.begin() as conn:
        assert close_period_invoices(conn, NOV, tenant_ids=["acme"], now=AT)
    _, adjustment = _documents(engine, "acme")
    assert (adjustment.status, adjustment.number) == ("closed", "INV-2026-000002")
    assert _generate(engine).corrections == ()  # billed so far = invoice + adjustment

    # usage of the 2nd re-aggregated much lower: a credit note for the difference
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-02", "0.5")
    (credit,) = _generate(engine).corrections
    # api.calls 2101 -> 1101 units (-1000 x 0.01 = -10.00)
    assert (credit.kind, credit.total) == ("credit_note", D("-10.00"))
    with engine.begin() as conn:
        close_period_invoices(conn, NOV, tenant_ids=["acme"], now=AT)
        note = get_invoice(conn, credit.invoice_id)
    assert (note.status, note.number, note.corrects_invoice_id) == (
        "closed",
        "CN-2026-000001",
        closed.id,
    )
    # the sum of the documents is what the re-rated invoice says
    assert sum(d.total for d in _documents(engine, "acme")) == D("55.01") + D("1.00") - D("10.00")


def test_voiding_the_invoice_drops_its_draft_correction(engine: Engine) -> None:
    closed = _closed_acme(engine)
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-21", "100")
    _generate(engine)
    with engine.begin() as conn:
        void_invoice(conn, closed.id, now=AT)
    assert [(d.id, d.status) for d in _documents(engine, "acme")] == [(closed.id, "void")]


def test_the_database_keeps_one_draft_correction_per_invoice(engine: Engine) -> None:
    closed = _closed_acme(engine)
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-21", "100")
    _generate(engine)
    statement = sa.text(
        "INSERT INTO invoices (tenant_id, period_start, period_end, currency, total, kind,"
        " corrects_invoice_id) VALUES ('acme', '2026-11-01', '2026-12-01', 'USD', 1, "
        " 'adjustment', :id)"
    )
    with pytest.raises(sa.exc.IntegrityError) as info, engine.begin() as conn:
        conn.execute(statement, {"id": closed.id})
    assert getattr(info.value.orig, "sqlstate", None) == "23505"
    # a credit note must be negative, an adjustment may not be; a correction names its invoice
    for values in (
        "('acme', '2026-11-01', '2026-12-01', 'USD', 1, 'credit_note', NULL)",
        "('acme', '2026-11-01', '2026-12-01', 'USD', -1, 'adjustment', NULL)",
        "('acme', '2026-11-01', '2026-12-01', 'USD', 1, 'adjustment', NULL)",
    ):
        with pytest.raises(sa.exc.IntegrityError) as info, engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO invoices (tenant_id, period_start, period_end, currency,"
                    f" total, kind, corrects_invoice_id) VALUES {values}"
                )
            )
        assert getattr(info.value.orig, "sqlstate", None) == "23514", values
