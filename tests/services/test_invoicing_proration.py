"""Proration, billing periods and the included allowance (pure functions)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from models.period import BillingPeriod

from models.money import round_money
from services.proration import (
    Window,
    billable_quantity,
    effective_included,
    prorate_base_fee,
    subscription_window,
)
from tallyflow.core.errors import InvalidInput

NOV = BillingPeriod.parse("2026-11")  # 30 days
JAN = BillingPeriod.parse("2027-01")  # 31 days
FEB_LEAP = BillingPeriod.parse("2028-02")  # 29 days
FEB = BillingPeriod.parse("2027-02")  # 28 days


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.mark.parametrize(
    ("text", "start", "end", "days"),
    [
        ("2026-11", "2026-11-01", "2026-12-01", 30),
        ("2026-12", "2026-12-01", "2027-01-01", 31),  # year boundary
        ("2028-02", "2028-02-01", "2028-03-01", 29),  # leap February
        ("2027-02", "2027-02-01", "2027-03-01", 28),
    ],
)
def test_period_parse(text: str, start: str, end: str, days: int) -> None:
    period = BillingPeriod.parse(text)
    assert (period.start, period.end, period.days, period.label) == (d(start), d(end), days, text)


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", "x"])
def test_period_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        BillingPeriod.parse(text)
    assert info.value.code == "invalid_period"


def test_previous_period() -> None:
    assert BillingPeriod.previous(d("2027-01-01")) == BillingPeriod.parse("2026-12")
    assert BillingPeriod.previous(d("2026-11-24")) == BillingPeriod.parse("2026-10")


@pytest.mark.parametrize(
    ("base_fee", "starts_on", "ends_on", "period", "currency", "expected"),
    [
        # whole month: the full fee, no division
        ("30.00", "2026-01-01", None, NOV, "USD", "30.00"),
        # mid-month start: Nov 16..30 = 15 of 30 days
        ("30.00", "2026-11-16", None, NOV, "USD", "15.00"),
        # mid-month end: Nov 1..10 (ends_on 11th exclusive) = 10 of 30 days -> 33.333.. -> 33.33
        ("100.00", "2026-10-01", "2026-11-11", NOV, "USD", "33.33"),
        # plan change on the 16th of a 31-day month: old plan Jan 1..15 = 15/31 of 31.00
        ("31.00", "2026-12-01", "2027-01-16", JAN, "USD", "15.00"),
        # ... and the new plan Jan 16..31 = 16/31 of 62.00
        ("62.00", "2027-01-16", None, JAN, "USD", "32.00"),
        # February of a leap year: Feb 15..29 = 15 of 29 days of 29.00
        ("29.00", "2028-02-15", None, FEB_LEAP, "USD", "15.00"),
        # the same start in a 28-day February: 14/28
        ("29.00", "2027-02-15", None, FEB, "USD", "14.50"),
        # JPY: 1000 x 16/31 = 516.129 -> 516
        ("1000", "2027-01-16", None, JAN, "JPY", "516"),
        # BHD (3 decimals): 10 x 15/31 = 4.8387096.. -> 4.839
        ("10.000", "2027-01-17", None, JAN, "BHD", "4.839"),
    ],
)
def test_prorate_base_fee(
    base_fee: str,
    starts_on: str,
    ends_on: str | None,
    period: BillingPeriod,
    currency: str,
    expected: str,
) -> None:
    window = subscription_window(d(starts_on), d(ends_on) if ends_on else None, period)
    assert window is not None
    assert round_money(prorate_base_fee(D(base_fee), window, period), currency) == D(expected)


def test_prorate_is_exact_before_rounding() -> None:
    # 10 x 1/16 = 0.625 exactly: half-up gives 0.63 (half-even would give 0.62)
    period = BillingPeriod(d("2026-01-01"), d("2026-01-17"))  # 16 days
    window = Window(d("2026-01-16"), d("2026-01-17"))
    exact = prorate_base_fee(D("10.00"), window, period)
    assert exact == D("0.625")
    assert round_money(exact, "USD") == D("0.63")


def test_subscription_window_outside_period() -> None:
    assert subscription_window(d("2026-12-01"), None, NOV) is None
    assert subscription_window(d("2026-10-01"), d("2026-11-01"), NOV) is None
    assert subscription_window(d("2026-10-01"), d("2026-11-02"), NOV) == Window(
        d("2026-11-01"), d("2026-11-02")
    )


W30 = Window(d("2026-11-01"), d("2026-12-01"))


@pytest.mark.parametrize(
    ("plan_included", "overrides", "expected"),
    [
        # no override: the plan's allowance
        ("100", [], "100"),
        # an override for every day of the window: its value exactly
        ("100", [("1000", 30)], "1000"),
        # override of 1000 for 10 of 30 days, plan 0 for 20: 10000/30 = 333.333333
        ("0", [("1000", 10)], "333.333333"),
        # override for 15 of 30 days, plan 100 for the others: (1500 + 15000)/30 = 550
        ("100", [("1000", 15)], "550"),
        # two overrides back to back: 10 days of 300, 20 days of 600 -> 500
        ("0", [("300", 10), ("600", 20)], "500"),
        # an override lowering the allowance to 0 for 20 days: 900 x 10 / 30 = 300
        ("900", [("0", 20)], "300"),
        # 2/3 rounds half-up at the 6th decimal: 0.666667
        ("0", [("1", 20)], "0.666667"),
    ],
)
def test_effective_included(
    plan_included: str, overrides: list[tuple[str, int]], expected: str
) -> None:
    pairs = [(D(i), days) for i, days in overrides]
    assert effective_included(D(plan_included), W30, pairs) == D(expected)


def test_effective_included_refuses_more_days_than_the_window() -> None:
    with pytest.raises(ValueError):
        effective_included(D(0), W30, [(D(1), 31)])


@pytest.mark.parametrize(
    ("quantity", "included", "expected"),
    [
        ("1500", "1000", "500"),  # usage above the allowance
        ("1000", "1000", "0"),  # exactly the allowance
        ("10", "1000", "0"),  # included larger than usage: never negative
        ("0", "0", "0"),
    ],
)
def test_billable_quantity(quantity: str, included: str, expected: str) -> None:
    assert billable_quantity(D(quantity), D(included)) == D(expected)


@settings(deadline=None)  # no timing assertions on a shared machine
@given(
    st.decimals(min_value=0, max_value=10**6, places=2),
    st.dates(min_value=d("2000-01-01"), max_value=d("2100-12-31")),
    st.integers(0, 30),
)
def test_proration_bounds(base_fee: D, day: dt.date, offset: int) -> None:
    period = BillingPeriod.of(day)
    start = min(period.start + dt.timedelta(days=offset), period.end - dt.timedelta(days=1))
    window = Window(start, period.end)
    prorated = prorate_base_fee(base_fee, window, period)
    assert 0 <= prorated <= base_fee
    assert prorate_base_fee(base_fee, Window(period.start, period.end), period) == base_fee


@settings(deadline=None)  # no timing assertions on a shared machine
@given(
    st.decimals(min_value=0, max_value=10**6, places=2),
    st.dates(min_value=d("2000-01-01"), max_value=d("2100-12-31")),
    st.integers(1, 27),
)
def test_split_windows_add_up_to_the_fee(base_fee: D, day: dt.date, split: int) -> None:
    # a plan change at any day: the two exact prorations add up to the whole fee
    period = BillingPeriod.of(day)
    cut = period.start + dt.timedelta(days=split)
    first = prorate_base_fee(base_fee, Window(period.start, cut), period)
    second = prorate_base_fee(base_fee, Window(cut, period.end), period)
    assert abs(first + second - base_fee) < D("1e-90")
