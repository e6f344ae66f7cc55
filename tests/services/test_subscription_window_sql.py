"""The subscription window rule has one home: the SQL function `subscription_windows`
(migration 0010) and its Python twin `services.proration.subscription_window`, held equal
here on real Postgres (hypothesis: random subscriptions and periods, edges, open ends,
empty and reversed periods), plus the statements calling it and Postgres inlining it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from models.api import PlanIn
from models.period import BillingPeriod
from services import catalog
from services.metrics.compute import SubscriptionWindow
from services.metrics.store import subscription_windows
from services.proration import subscription_window
from services.quota import refresh_quota_usage
from tallyflow.core.sqlfiles import sql

DAY = dt.timedelta(days=1)
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass(frozen=True)
class Sub:
    tenant_id: str
    plan: int  # index into the test's plans
    starts_on: dt.date
    ends_on: dt.date | None


@st.composite
def periods(draw: st.DrawFn) -> BillingPeriod:
    """A calendar month (what callers ask for), or any [start, end): empty and reversed too."""
    start = draw(st.dates(dt.date(2024, 1, 1), dt.date(2028, 12, 31)))
    if draw(st.booleans()):
        return BillingPeriod.of(start)
    return BillingPeriod(start, start + draw(st.integers(-3, 62)) * DAY)


@st.composite
def subscriptions(draw: st.DrawFn, edges: list[dt.date], tenants: int = 4) -> list[Sub]:
    """Per tenant, consecutive non-overlapping subscriptions starting near a period edge
    (on it, a day either side, or well outside); the last one may be open (ends_on null)."""
    offsets = st.integers(-1, 1) | st.integers(-45, 45)

    def near_edge() -> dt.date:
        return draw(st.sampled_from(edges)) + draw(offsets) * DAY

    out: list[Sub] = []
    for t in range(draw(st.integers(0, tenants))):
        start = near_edge()
        count = draw(st.integers(1, 4))
        for i in range(count):
            plan = draw(st.integers(0, 1))
            if i == count - 1 and draw(st.booleans()):
                out.append(Sub(f"t{t}", plan, start, None))
                break
            end = near_edge() if draw(st.booleans()) else start + draw(st.integers(1, 70)) * DAY
            end = max(end, start + DAY)  # ends_on > starts_on (the table's rule)
            out.append(Sub(f"t{t}", plan, start, end))
            start = end + draw(st.integers(0, 5)) * DAY  # back to back, or a gap
    return out


@st.composite
def window_cases(draw: st.DrawFn) -> tuple[BillingPeriod, list[Sub], list[str] | None]:
    period = draw(periods())
    subs = draw(subscriptions([period.start, period.end]))
    names = sorted({s.tenant_id for s in subs} | {"nobody"})
    tenant_ids = draw(st.none() | st.lists(st.sampled_from(names), unique=True))
    return period, subs, tenant_ids


@pytest.fixture
def plan_ids(engine: Engine) -> list[int]:
    """Two plans, each with one quota (so the quota refresh writes a row per subscription)."""
    ids = []
    with engine.begin() as conn:
        for code in ("basic", "pro"):
            plan = PlanIn.model_validate(
                {
                    "code": code,
                    "name": code.title(),
                    "currency": "USD",
                    "base_fee": "10",
                    "quotas": [
                        {
                            "metric": "calls",
                            "limit": "100",
                            "pricing": {"model": "per_unit", "unit_price": "0.01"},
                        }
                    ],
                }
            )
            ids.append(catalog.create_plan(conn, plan).id)
    return ids


@pytest.fixture
def scratch(engine: Engine) -> Iterator[sa.Connection]:
    """A connection whose every example runs in a transaction that is rolled back."""
    with engine.connect() as conn:
        yield conn


def insert(conn: sa.Connection, subs: list[Sub], plan_ids: list[int]) -> dict[int, Sub]:
    """Insert the subscriptions; {id: subscription}."""
    out = {}
    for s in subs:
        sub_id = conn.execute(
            sa.text(
                "INSERT INTO subscriptions (tenant_id, plan_id, starts_on, ends_on)"
                " VALUES (:tenant_id, :plan_id, :starts_on, :ends_on) RETURNING id"
            ),
            {
                "tenant_id": s.tenant_id,
                "plan_id": plan_ids[s.plan],
                "starts_on": s.starts_on,
                "ends_on": s.ends_on,
            },
        ).scalar_one()
        out[sub_id] = s
    return out


def python_windows(
    subs: dict[int, Sub], period: BillingPeriod, tenant_ids: list[str] | None, plan_ids: list[int]
) -> set[tuple[Any, ...]]:
    """What the Python twin says: (subscription_id, tenant_id, plan_id, start, end)."""
    out = set()
    for sub_id, s in subs.items():
        if tenant_ids is not None and s.tenant_id not in tenant_ids:
            continue
        window = subscription_window(s.starts_on, s.ends_on, period)
        if window is not None:
            assert window.start < window.end
            out.add((sub_id, s.tenant_id, plan_ids[s.plan], window.start, window.end))
    return out


@PROPERTY
@given(case=window_cases(), omit_filter=st.booleans())
def test_sql_function_equals_the_python_twin(
    scratch: sa.Connection,
    plan_ids: list[int],
    case: tuple[BillingPeriod, list[Sub], list[str] | None],
    omit_filter: bool,
) -> None:
    period, subs, tenant_ids = case
    with scratch.begin() as tx:
        inserted = insert(scratch, subs, plan_ids)
        params = {"start": period.start, "end": period.end, "tenant_ids": tenant_ids}
        # NOTE: without the third argument its DEFAULT NULL applies (all tenants).
        args = "CAST(:start AS date), CAST(:end AS date)"
        if not (omit_filter and tenant_ids is None):
            args += ", CAST(:tenant_ids AS text[])"
        found = scratch.execute(
            sa.text(
                "SELECT subscription_id, tenant_id, plan_id, window_start, window_end"
                f" FROM subscription_windows({args})"
            ),
            params,
        ).all()
        tx.rollback()
    assert len(found) == len(set(found))
    assert {tuple(r) for r in found} == python_windows(inserted, period, tenant_ids, plan_ids)


@st.composite
def month_cases(draw: st.DrawFn) -> tuple[list[BillingPeriod], list[Sub], list[str] | None]:
    first = BillingPeriod.of(draw(st.dates(dt.date(2024, 1, 1), dt.date(2028, 12, 31))))
    months = [first]
    for _ in range(draw(st.integers(0, 2))):
        months.append(BillingPeriod.of(months[-1].end))
    chosen = draw(st.lists(st.sampled_from(months), min_size=1, unique=True))
    subs = draw(subscriptions(sorted({m.start for m in months} | {m.end for m in months})))
    names = sorted({s.tenant_id for s in subs} | {"nobody"})
    tenant_ids = draw(st.none() | st.lists(st.sampled_from(names), unique=True))
    return sorted(chosen), subs, tenant_ids


@PROPERTY
@given(case=month_cases())
def test_metric_windows_of_several_periods_equal_the_python_twin(
    scratch: sa.Connection,
    plan_ids: list[int],
    case: tuple[list[BillingPeriod], list[Sub], list[str] | None],
) -> None:
    """services.metrics.store.subscription_windows (the function over several periods at
    once, LATERAL) gives the twin's windows of every period, in its order."""
    months, subs, tenant_ids = case
    with scratch.begin() as tx:
        inserted = insert(scratch, subs, plan_ids)
        found = subscription_windows(scratch, months, tenant_ids)
        tx.rollback()
    expected = [
        SubscriptionWindow(*key)
        for key in sorted(
            (tenant, month.start, start, end)
            for month in months
            for _, tenant, _, start, end in python_windows(inserted, month, tenant_ids, plan_ids)
        )
    ]
    assert found == expected  # in the reader's order: tenant, period, window start


@PROPERTY
@given(
    today=st.dates(dt.date(2024, 1, 1), dt.date(2028, 12, 31)),
    data=st.data(),
)
def test_quota_refresh_takes_the_subscription_active_today(
    scratch: sa.Connection, plan_ids: list[int], today: dt.date, data: st.DataObject
) -> None:
    """refresh_quota_usage keeps the subscription whose window in the month of `today`
    holds `today` (what its SQL asks the function for): exactly the one with
    starts_on <= today < ends_on (null = open), one quota row per tenant that has one."""
    month = BillingPeriod.of(today)
    subs = data.draw(subscriptions([today, month.start, month.end]))
    with scratch.begin() as tx:
        inserted = insert(scratch, subs, plan_ids)
        refresh_quota_usage(scratch, today=today, as_of=None)
        found = {
            r.tenant_id: (r.subscription_id, r.period_start, r.period_end)
            for r in scratch.execute(
                sa.text(
                    "SELECT tenant_id, subscription_id, period_start, period_end FROM quota_usage"
                )
            )
        }
        tx.rollback()
    active = {
        s.tenant_id: (sub_id, month.start, month.end)
        for sub_id, s in inserted.items()
        if s.starts_on <= today and (s.ends_on is None or today < s.ends_on)
    }
    assert found == active
    for sub_id, _, _ in active.values():
        s = inserted[sub_id]
        window = subscription_window(s.starts_on, s.ends_on, month)
        assert window is not None and window.start <= today < window.end


# --- every copy of the rule is gone, and Postgres inlines the function -----------------

CALLERS = [
    "invoicing/select_billing_windows",
    "invoicing/select_billing_window_usage",
    "invoicing/select_billing_override_days",
    "invoicing/select_unsubscribed_usage",
    "quotas/refresh_quota_usage",
    "metrics/select_metric_subscription_windows",
]
PARAMS = {
    "period_start": dt.date(2026, 11, 1),
    "period_end": dt.date(2026, 12, 1),
    "period_starts": [dt.date(2026, 10, 1), dt.date(2026, 11, 1)],
    "period_ends": [dt.date(2026, 11, 1), dt.date(2026, 12, 1)],
    "today": dt.date(2026, 11, 5),
    "as_of": None,
}


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def scans(plan: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(tables scanned, functions scanned) of an EXPLAIN (FORMAT JSON) plan."""
    nodes = list(plan_nodes(plan["Plan"]))
    tables = {n["Relation Name"] for n in nodes if "Relation Name" in n}
    functions = {n.get("Function Name", "") for n in nodes if n["Node Type"] == "Function Scan"}
    return tables, functions


@pytest.mark.parametrize("name", CALLERS)
@pytest.mark.parametrize("tenant_ids", [None, ["t1", "t2"]])
def test_callers_use_the_function_and_postgres_inlines_it(
    engine: Engine, name: str, tenant_ids: list[str] | None
) -> None:
    statement = sql(name).text
    assert "subscription_windows(" in statement
    assert not re.search(r"\b(FROM|JOIN)\s+subscriptions\b", statement, re.IGNORECASE)
    with engine.connect() as conn:
        (plan,) = conn.execute(
            sa.text(f"EXPLAIN (FORMAT JSON) {statement}"), {**PARAMS, "tenant_ids": tenant_ids}
        ).scalar_one()
    tables, functions = scans(plan)
    assert "subscriptions" in tables, plan
    assert "subscription_windows" not in functions, plan


def test_the_generic_plan_inlines_it_too(engine: Engine) -> None:
    """A prepared statement's generic plan (psycopg prepares a statement run often) scans
    subscriptions as well; a plpgsql or SECURITY DEFINER function would show a Function
    Scan, which the last assertion proves this check would see."""
    with engine.connect() as conn:
        conn.execute(sa.text("SET plan_cache_mode = force_generic_plan"))
        conn.execute(
            sa.text(
                "PREPARE windows(date, date, text[]) AS"
                " SELECT * FROM subscription_windows($1, $2, $3)"
            )
        )
        (plan,) = conn.execute(
            sa.text("EXPLAIN (FORMAT JSON) EXECUTE windows('2026-11-01', '2026-12-01', NULL)")
        ).scalar_one()
        assert scans(plan) == ({"subscriptions"}, set()), plan
        conn.execute(
            sa.text(
                "CREATE FUNCTION pg_temp.opaque_windows(date, date) RETURNS SETOF subscriptions"
                " LANGUAGE sql STABLE SECURITY DEFINER AS $$ SELECT * FROM subscriptions $$"
            )
        )
        (opaque,) = conn.execute(
            sa.text(
                "EXPLAIN (FORMAT JSON) SELECT * FROM pg_temp.opaque_windows('2026-11-01', NULL)"
            )
        ).scalar_one()
        assert scans(opaque) == (set(), {"opaque_windows"}), opaque
        conn.rollback()
        conn.execute(sa.text("DEALLOCATE windows"))


def test_the_function_is_declared_inlinable(engine: Engine) -> None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT l.lanname, p.provolatile, p.prosecdef, p.proisstrict, p.proconfig"
                " FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                " WHERE p.proname = 'subscription_windows'"
            )
        ).one()
    assert tuple(row) == ("sql", "s", False, False, None)
