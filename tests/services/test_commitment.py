"""Minimum commitment: the pure true-up rule and its line in compute_invoice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from models.period import BillingPeriod
from models.pricing import parse_pricing
from services.commitment import commitment_true_up
from services.invoicing import BillableWindow, PlanTerms, QuotaTerms, UsageTotals, compute_invoice
from services.proration import Window

NOV = BillingPeriod.parse("2026-11")  # 30 days
FULL = Window(NOV.start, NOV.end)
HALF = Window(dt.date(2026, 11, 16), NOV.end)  # 15 days


@pytest.mark.parametrize(
    ("minimum", "window", "charged", "expected"),
    [
        # the module docstring's example: 100.00 prorated to 15/30 days = 50.00, 32.34 charged
        ("100.00", HALF, ["20.00", "12.34"], "17.66"),
        # the window already costs more than its prorated minimum: no line
        ("100.00", HALF, ["20.00", "40.00"], None),
        # exactly at the minimum: no line (nothing to true up)
        ("100.00", FULL, ["60.00", "40.00"], None),
        # no minimum on the plan
        (None, FULL, ["0"], None),
        ("0", FULL, ["0"], None),
        # nothing charged: the whole prorated minimum; 100 x 7/30 = 23.333... -> 23.33
        ("100.00", Window(dt.date(2026, 11, 24), NOV.end), [], "23.33"),
    ],
)
def test_true_up(
    minimum: str | None, window: Window, charged: list[str], expected: str | None
) -> None:
    got = commitment_true_up(
        D(minimum) if minimum is not None else None, window, NOV, [D(c) for c in charged], "USD"
    )
    assert (got.amount if got else None) == (D(expected) if expected else None)


def test_true_up_rounds_to_the_currency() -> None:
    got = commitment_true_up(D("1000"), Window(dt.date(2026, 11, 24), NOV.end), NOV, [], "JPY")
    assert got is not None and got.amount == D("233")  # 1000 x 7 / 30 = 233.33 -> 233 yen


def _plan(minimum: str | None) -> PlanTerms:
    pricing = parse_pricing({"model": "per_unit", "unit_price": "0.01"})
    return PlanTerms(
        plan_id=1,
        code="pro",
        name="Pro",
        currency="USD",
        base_fee=D("20.00"),
        quotas=(QuotaTerms("api.calls", "sum", D(0), pricing, pricing.to_json()),),
        minimum_commitment=D(minimum) if minimum else None,
    )


def test_compute_invoice_adds_a_true_up_line_per_window_below_its_minimum() -> None:
    plan = _plan("100.00")
    windows = [
        # Nov 1-16: 15 days -> base 10.00, usage 5.00, minimum 50.00 -> true-up 35.00
        BillableWindow(
            1,
            plan,
            Window(NOV.start, dt.date(2026, 11, 16)),
            usage={"api.calls": UsageTotals(D(500))},
        ),
        # Nov 16-30: usage 60.00 + base 10.00 = 70.00 >= 50.00 -> no true-up
        BillableWindow(2, plan, HALF, usage={"api.calls": UsageTotals(D(6000))}),
    ]
    invoice = compute_invoice("acme", NOV, windows)
    assert [(li.kind, li.subscription_id, li.amount) for li in invoice.lines] == [
        ("base_fee", 1, D("10.00")),
        ("usage", 1, D("5.00")),
        ("commitment_true_up", 1, D("35.00")),
        ("base_fee", 2, D("10.00")),
        ("usage", 2, D("60.00")),
    ]
    assert [li.line_no for li in invoice.lines] == [1, 2, 3, 4, 5]
    assert invoice.total == D("120.00")
    true_up = invoice.lines[2]
    assert true_up.breakdown["prorated_minimum"] == "50.00"
    assert true_up.breakdown["charged"] == "15.00"


def test_no_minimum_no_true_up_line() -> None:
    invoice = compute_invoice("acme", NOV, [BillableWindow(1, _plan(None), FULL)])
    assert [li.kind for li in invoice.lines] == ["base_fee", "usage"]
