"""Prepaid credits: the application rule (pure, table-driven) and the closing transaction
against a real Postgres (concurrent closes sharing a grant, crash rollback, would-apply)."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal as D
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from services.credits import Grant, application_order, plan_credits, would_apply_credits
from services.invoicing import (
    close_drafts,
    close_invoice,
    generate_invoices,
    get_invoice,
    list_invoices,
    with_credit_lines,
)
from tests.helpers import rows
from tests.services.test_invoicing import PER_UNIT, add_usage, seed_plan, subscribe

OCT = BillingPeriod.parse("2026-10")
NOV = BillingPeriod.parse("2026-11")
CLOSING = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)


def g(
    id: int,
    remaining: str,
    *,
    priority: int = 0,
    expires_on: str | None = None,
    effective_from: str = "2026-01-01",
    currency: str = "USD",
) -> Grant:
    return Grant(
        id=id,
        currency=currency,
        remaining=D(remaining),
        effective_from=dt.date.fromisoformat(effective_from),
        expires_on=dt.date.fromisoformat(expires_on) if expires_on else None,
        priority=priority,
    )


def applied(total: str, grants: list[Grant], *, on: str = "2026-12-02") -> list[tuple[int, D]]:
    uses = plan_credits(
        D(total), grants, currency="USD", period_end=NOV.end, on=dt.date.fromisoformat(on)
    )
    return [(u.grant_id, u.amount) for u in uses]


# --- the rule, one case each ----------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "grants", "expected"),
    [
        # the module docstring's worked example: priority first, then soonest expiry, then id
        (
            "100.00",
            [
                g(1, "80"),
                g(2, "30", priority=5, expires_on="2027-01-01"),
                g(3, "50", priority=5, expires_on="2026-12-15"),
            ],
            [(3, "50"), (2, "30"), (1, "20.00")],
        ),
        # a grant that never expires comes after every expiring one of the same priority
        ("10", [g(1, "10"), g(2, "10", expires_on="2030-01-01")], [(2, "10")]),
        # same priority and expiry: the older grant (lower id) first
        ("15", [g(7, "10"), g(4, "10")], [(4, "10"), (7, "5")]),
        # the total never goes below 0: a big grant only gives what is owed
        ("12.34", [g(1, "1000")], [(1, "12.34")]),
        # another currency never applies
        ("10", [g(1, "10", currency="EUR")], []),
        # expired at closing (expires_on is exclusive: expiring on the closing day is gone)
        ("10", [g(1, "10", expires_on="2026-12-02")], []),
        ("10", [g(1, "10", expires_on="2026-12-03")], [(1, "10")]),
        # effective only from the period's end or later: not for this period
        ("10", [g(1, "10", effective_from="2026-12-01")], []),
        ("10", [g(1, "10", effective_from="2026-11-30")], [(1, "10")]),
        # nothing owed, nothing used
        ("0.00", [g(1, "10")], []),
        # an empty grant is skipped
        ("5", [g(1, "0"), g(2, "10")], [(2, "5")]),
    ],
)
def test_application_rule(total: str, grants: list[Grant], expected: list[tuple[int, str]]) -> None:
    assert applied(total, grants) == [(i, D(a)) for i, a in expected]


def test_order_is_priority_then_expiry_then_id() -> None:
    grants = [
        g(1, "1"),
        g(2, "1", priority=1),
        g(3, "1", expires_on="2027-01-01"),
        g(4, "1", expires_on="2026-12-20"),
        g(5, "1", priority=-1, expires_on="2026-12-10"),
    ]
    assert [x.id for x in application_order(grants)] == [2, 4, 3, 1, 5]


money = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False)


@given(total=money, remainings=st.lists(money, max_size=6))
def test_credits_never_exceed_the_total_nor_a_grant(total: D, remainings: list[D]) -> None:
    grants = [g(i + 1, str(r)) for i, r in enumerate(remainings)]
    uses = plan_credits(total, grants, currency="USD", period_end=NOV.end, on=NOV.end)
    assert sum((u.amount for u in uses), D(0)) == min(total, sum(remainings, D(0)))
    for u in uses:
        assert 0 < u.amount <= u.remaining_before


# --- in the closing transaction -------------------------------------------------------------


def grant(engine: Engine, tenant: str, amount: str, **kw: Any) -> int:
    values = {
        "currency": "USD",
        "effective_from": dt.date(2026, 10, 1),
        "expires_on": None,
        "priority": 0,
        **kw,
    }
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.text(
                    "INSERT INTO credit_grants (tenant_id, currency, amount, remaining,"
                    " effective_from, expires_on, priority) VALUES (:t, :currency, :a, :a,"
                    " :effective_from, :expires_on, :priority) RETURNING id"
                ),
                {"t": tenant, "a": D(amount), **values},
            ).scalar_one()
        )


@pytest.fixture
def two_periods(engine: Engine) -> dict[str, int]:
    """acme on 'pro' (USD 30.00/month, 0.01 per call over 100) with drafts for Oct and Nov:
    Oct 30.00 + 10.00 = 40.00, Nov 30.00 + 20.00 = 50.00."""
    with engine.begin() as conn:
        plan = seed_plan(
            conn,
            "pro",
            base_fee="30.00",
            quotas={"api.calls": {"pricing": PER_UNIT, "included": "100"}},
        )
        subscribe(conn, "acme", plan, "2026-10-01")
        add_usage(conn, "acme", "api.calls", "2026-10-03", "1100")
        add_usage(conn, "acme", "api.calls", "2026-11-03", "2100")
    for period in (OCT, NOV):  # one run per transaction (its staging tables drop at commit)
        with engine.begin() as conn:
            generate_invoices(conn, period)
    with engine.connect() as conn:
        return {p.label: list_invoices(conn, "acme", period=p)[0].id for p in (OCT, NOV)}


def test_close_applies_credit_lines_and_lowers_remaining(
    engine: Engine, two_periods: dict[str, int]
) -> None:
    small = grant(engine, "acme", "15.00", priority=1)
    big = grant(engine, "acme", "100.00")
    with engine.begin() as conn:
        closed = close_invoice(conn, two_periods["2026-10"], now=CLOSING)
    assert closed.total == D("0.00")
    assert [(li.kind, li.amount) for li in closed.lines or ()] == [
        ("base_fee", D("30.00")),
        ("usage", D("10.00")),
        ("credit", D("-15.00")),
        ("credit", D("-25.00")),
    ]
    assert rows(engine, "SELECT id, remaining FROM credit_grants ORDER BY id") == [
        (small, D("0")),
        (big, D("75")),
    ]
    assert rows(engine, "SELECT grant_id, amount FROM credit_applications ORDER BY grant_id") == [
        (small, D("15")),
        (big, D("25")),
    ]


def test_drafts_show_would_apply_credits_without_reserving(
    engine: Engine, two_periods: dict[str, int]
) -> None:
    grant(engine, "acme", "45.00")
    with engine.connect() as conn:
        oct_draft = get_invoice(conn, two_periods["2026-10"])
        nov_draft = get_invoice(conn, two_periods["2026-11"])
        # both drafts would use the same grant now: nothing is reserved
        assert [u.amount for u in would_apply_credits(conn, oct_draft, on=CLOSING.date())] == [
            D("40.00")
        ]
        assert [u.amount for u in would_apply_credits(conn, nov_draft, on=CLOSING.date())] == [
            D("45.00")
        ]
    assert rows(engine, "SELECT remaining FROM credit_grants") == [(D("45"),)]
    assert rows(engine, "SELECT count(*) FROM credit_applications") == [(0,)]


def test_concurrent_closes_sharing_one_grant_never_overdraw_it(
    engine: Engine, two_periods: dict[str, int]
) -> None:
    """Two closes of two invoices of one tenant, each on its own connection and thread,
    sharing a 60.00 grant (40.00 + 50.00 owed): one gets what it needs, the other the rest."""
    shared = grant(engine, "acme", "60.00")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def close(invoice_id: int) -> None:
        try:
            with engine.begin() as conn:
                barrier.wait()
                close_invoice(conn, invoice_id, now=CLOSING)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=close, args=(i,)) for i in two_periods.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    (remaining,) = rows(engine, f"SELECT remaining FROM credit_grants WHERE id = {shared}")[0]
    applications = rows(engine, "SELECT invoice_id, amount FROM credit_applications ORDER BY id")
    assert remaining == D("0")
    assert sum(a for _, a in applications) == D("60")
    assert len(applications) == 2  # one per invoice, none applied twice
    totals = dict(rows(engine, "SELECT id, total FROM invoices WHERE status = 'closed'"))
    credited = {i: a for i, a in applications}
    # whichever closed first took what it owed; every total is its lines' sum, never < 0
    assert sorted(totals[i] + credited[i] for i in credited) == [D("40"), D("50")]
    for invoice_id, total in totals.items():
        assert total >= 0
        (line_sum,) = rows(
            engine, f"SELECT sum(amount) FROM invoice_lines WHERE invoice_id = {invoice_id}"
        )[0]
        assert line_sum == total


def test_a_failed_close_applies_nothing(engine: Engine, two_periods: dict[str, int]) -> None:
    grant(engine, "acme", "100.00")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), engine.begin() as conn:
        close_invoice(conn, two_periods["2026-10"], now=CLOSING)
        raise Boom  # the closing transaction rolls back after the credits were applied
    assert rows(engine, "SELECT remaining FROM credit_grants") == [(D("100"),)]
    assert rows(engine, "SELECT count(*) FROM credit_applications") == [(0,)]
    assert rows(engine, "SELECT count(*) FROM invoice_lines WHERE kind = 'credit'") == [(0,)]
    assert rows(engine, "SELECT status FROM invoices ORDER BY id") == [("draft",), ("draft",)]


def test_bulk_close_of_a_period_applies_credits(
    engine: Engine, two_periods: dict[str, int]
) -> None:
    grant(engine, "acme", "45.00")
    with engine.begin() as conn:
        result = generate_invoices(conn, NOV, close=True, now=CLOSING)
    assert result.closed == 1
    with engine.connect() as conn:
        nov = get_invoice(conn, two_periods["2026-11"])
    assert nov.status == "closed" and nov.total == D("5.00")
    assert [li.amount for li in nov.lines or () if li.kind == "credit"] == [D("-45.00")]


def test_the_database_refuses_an_overdraft(engine: Engine) -> None:
    grant_id = grant(engine, "acme", "10.00")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE credit_grants SET remaining = remaining - 11 WHERE id = :id"),
            {"id": grant_id},
        )


def test_one_close_of_two_drafts_shares_their_grants_in_id_order(
    engine: Engine, two_periods: dict[str, int]
) -> None:
    """One bulk close, set-based: the first draft (Oct, 40.00) takes what it owes, the
    second (Nov, 50.00) the rest of the 60.00; each gets exactly the line it showed."""
    shared = grant(engine, "acme", "60.00")
    oct_id, nov_id = two_periods["2026-10"], two_periods["2026-11"]
    with engine.connect() as conn:
        shown = {
            i: [
                li
                for li in with_credit_lines(conn, get_invoice(conn, i), on=CLOSING.date()).lines
                or ()
                if li.kind == "credit"
            ]
            for i in (oct_id, nov_id)
        }
    # each draft alone would take what it owes: nothing is reserved
    assert [li.amount for li in shown[oct_id]] == [D("-40.00")]
    assert [li.amount for li in shown[nov_id]] == [D("-50.00")]
    with engine.begin() as conn:
        assert close_drafts(conn, now=CLOSING, invoice_ids=[nov_id, oct_id]) == [oct_id, nov_id]
    with engine.connect() as conn:
        oct_closed, nov_closed = get_invoice(conn, oct_id), get_invoice(conn, nov_id)
    assert (oct_closed.total, nov_closed.total) == (D("0.00"), D("30.00"))
    (oct_line,) = [li for li in oct_closed.lines or () if li.kind == "credit"]
    (nov_line,) = [li for li in nov_closed.lines or () if li.kind == "credit"]
    assert (oct_line.amount, nov_line.amount) == (D("-40.00"), D("-20.00"))
    assert oct_line.breakdown == {**shown[oct_id][0].breakdown, "would_apply": False}
    assert (oct_line.line_no, oct_line.plan_code, oct_line.window_start) == (
        shown[oct_id][0].line_no,
        shown[oct_id][0].plan_code,
        shown[oct_id][0].window_start,
    )
    assert nov_line.breakdown["remaining_before"] == "20.00"
    assert rows(engine, f"SELECT remaining FROM credit_grants WHERE id = {shared}") == [(D("0"),)]
    assert rows(
        engine, "SELECT invoice_id, amount FROM credit_applications ORDER BY invoice_id"
    ) == [
        (oct_id, D("40")),
        (nov_id, D("20")),
    ]
