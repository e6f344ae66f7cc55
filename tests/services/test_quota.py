"""refresh_quota_usage on real Postgres, the pure check rule, and the snapshot agreeing with
the one-statement database read."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.api import OverrideIn, PlanIn, SubscriptionIn
from models.period import BillingPeriod
from services import catalog
from services.quota import (
    QuotaRow,
    QuotaSnapshot,
    check_quota,
    decide,
    refresh_quota_usage,
)
from tallyflow.core.db import to_libpq_url

TODAY = dt.date(2026, 3, 20)
RUN_AT = dt.datetime(2026, 3, 20, 2, 0, tzinfo=dt.UTC)

PLAN = PlanIn.model_validate(
    {
        "code": "pro",
        "name": "Pro",
        "currency": "EUR",
        "base_fee": "10",
        "quotas": [
            {
                "metric": "calls",
                "limit": "100",
                "included": "10",
                "pricing": {"model": "per_unit", "unit_price": "0.01"},
            },
            {
                "metric": "events",
                "aggregation": "count",
                "limit": "5",
                "pricing": {"model": "per_unit", "unit_price": "0.01"},
            },
            {
                "metric": "peak",
                "aggregation": "max",
                "enforcement": "soft",
                "limit": "7",
                "pricing": {"model": "per_unit", "unit_price": "0.01"},
            },
        ],
    }
)


def usage(
    conn: sa.Connection, tenant: str, metric: str, day: str, total: str, count: int, peak: str
) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO usage_daily (tenant_id, metric, usage_date, quantity_sum, event_count,"
            " quantity_max, first_occurred_at, last_occurred_at, updated_at)"
            " VALUES (:t, :m, :d, :s, :c, :x, now(), now(), :u)"
        ),
        {
            "t": tenant,
            "m": metric,
            "d": dt.date.fromisoformat(day),
            "s": Decimal(total),
            "c": count,
            "x": Decimal(peak),
            "u": dt.datetime(2026, 3, 19, 1, 0, tzinfo=dt.UTC),
        },
    )


def quota_rows(conn: sa.Connection) -> dict[tuple[str, str], dict[str, Any]]:
    rows = conn.execute(sa.text("SELECT * FROM quota_usage")).mappings()
    return {(r["tenant_id"], r["metric"]): dict(r) for r in rows}


@pytest.fixture
def catalog_ready(engine: Engine) -> None:
    with engine.begin() as conn:
        catalog.create_plan(conn, PLAN)
        for tenant in ("a", "b"):
            catalog.create_subscription(
                conn,
                tenant,
                SubscriptionIn(plan_code="pro", starts_on=dt.date(2026, 1, 1)),
                today=TODAY,
            )


def test_refresh_applies_each_aggregation_to_the_month(engine: Engine, catalog_ready: None) -> None:
    with engine.begin() as conn:
        usage(conn, "a", "calls", "2026-02-28", "1000", 9, "900")  # last month: not counted
        usage(conn, "a", "calls", "2026-03-01", "30", 3, "20")
        usage(conn, "a", "calls", "2026-03-19", "12.5", 2, "10")
        usage(conn, "a", "events", "2026-03-02", "99", 4, "50")
        usage(conn, "a", "events", "2026-03-03", "1", 1, "1")
        usage(conn, "a", "peak", "2026-03-02", "9", 2, "6.5")
        usage(conn, "a", "peak", "2026-03-05", "3", 1, "3")
        written = refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
        rows = quota_rows(conn)
    assert written == 6  # 3 metrics x 2 tenants
    assert rows[("a", "calls")]["used"] == Decimal("42.5")
    assert rows[("a", "events")]["used"] == Decimal("5")  # count of events
    assert rows[("a", "peak")]["used"] == Decimal("6.5")  # max of the month
    assert rows[("b", "calls")]["used"] == Decimal("0")
    a_calls = rows[("a", "calls")]
    assert (a_calls["period_start"], a_calls["period_end"]) == (
        dt.date(2026, 3, 1),
        dt.date(2026, 4, 1),
    )
    assert a_calls["as_of"] == RUN_AT and a_calls["source"] == "plan"
    assert (a_calls["included"], a_calls["limit"], a_calls["enforcement"]) == (
        Decimal("10"),
        Decimal("100"),
        "hard",
    )


def test_refresh_is_idempotent_and_scoped(engine: Engine, catalog_ready: None) -> None:
    with engine.begin() as conn:
        usage(conn, "a", "calls", "2026-03-10", "5", 1, "5")
        refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
        first = quota_rows(conn)
        refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
        again = quota_rows(conn)
    strip = lambda rows: {k: {**v, "refreshed_at": None} for k, v in rows.items()}  # noqa: E731
    assert strip(first) == strip(again)

    later = RUN_AT + dt.timedelta(hours=1)
    with engine.begin() as conn:
        usage(conn, "b", "calls", "2026-03-10", "8", 1, "8")
        usage(conn, "a", "calls", "2026-03-11", "1", 1, "1")
        refresh_quota_usage(conn, today=TODAY, as_of=later, tenant_ids=["b"])
        rows = quota_rows(conn)
    assert rows[("b", "calls")]["used"] == Decimal("8") and rows[("b", "calls")]["as_of"] == later
    # tenant a was not in scope: untouched
    assert rows[("a", "calls")]["used"] == Decimal("5") and rows[("a", "calls")]["as_of"] == RUN_AT


def test_catalog_change_keeps_as_of_and_plan_change_restarts_the_window(
    engine: Engine, catalog_ready: None
) -> None:
    with engine.begin() as conn:
        usage(conn, "a", "calls", "2026-03-05", "50", 5, "10")
        usage(conn, "a", "calls", "2026-03-15", "7", 1, "7")
        refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
        catalog.replace_overrides(
            conn, "a", [OverrideIn(metric="calls", limit=Decimal("500"))], today=TODAY
        )
        overridden = quota_rows(conn)[("a", "calls")]
    assert overridden["as_of"] == RUN_AT  # no new usage behind `used`
    assert (overridden["limit"], overridden["included"], overridden["source"]) == (
        Decimal("500"),
        Decimal("10"),
        "override",
    )

    with engine.begin() as conn:
        catalog.create_plan(conn, PLAN.model_copy(update={"code": "max"}))
        catalog.create_subscription(
            conn,
            "a",
            SubscriptionIn(plan_code="max", starts_on=dt.date(2026, 3, 10)),
            today=TODAY,
        )
        changed = quota_rows(conn)[("a", "calls")]
    # the new subscription counts only the usage of its own window (from the 10th)
    assert changed["used"] == Decimal("7") and changed["plan_code"] == "max"


def test_ended_subscription_loses_its_rows(engine: Engine, catalog_ready: None) -> None:
    with engine.begin() as conn:
        refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
        conn.execute(
            sa.text("UPDATE subscriptions SET ends_on = '2026-03-15' WHERE tenant_id = 'b'")
        )
        refresh_quota_usage(conn, today=TODAY, as_of=None)
        rows = quota_rows(conn)
    assert {k[0] for k in rows} == {"a"}


def test_refresh_notifies_on_commit(engine: Engine, database_url: str) -> None:
    with psycopg.connect(to_libpq_url(database_url), autocommit=True) as listener:
        listener.execute("LISTEN tallyflow_quota_usage")
        with engine.begin() as conn:
            refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT, tenant_ids=["b", "a"])
        with engine.begin() as conn:
            refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
        notes = list(listener.notifies(timeout=2, stop_after=2))
    assert [json.loads(n.payload) for n in notes] == [
        {"tenant_ids": ["a", "b"]},
        {"tenant_ids": None},
    ]


def test_snapshot_agrees_with_the_database_read(engine: Engine, catalog_ready: None) -> None:
    with engine.begin() as conn:
        usage(conn, "a", "calls", "2026-03-05", "100", 5, "10")
        usage(conn, "a", "peak", "2026-03-05", "100", 5, "10")
        refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
    snapshot = QuotaSnapshot()
    with engine.connect() as conn:
        assert snapshot.reload(conn, today=TODAY) == 6
        for tenant, metric, quantity in [
            ("a", "calls", "0"),
            ("a", "calls", "1"),
            ("a", "peak", "1"),
            ("a", "events", "5"),
            ("a", "events", "6"),
            ("a", "nope", "1"),
            ("zed", "calls", "1"),
        ]:
            args = {
                "tenant_id": tenant,
                "metric": metric,
                "requested": Decimal(quantity),
                "today": TODAY,
            }
            assert snapshot.check(**args) == check_quota(conn, **args), (tenant, metric)


@pytest.mark.parametrize(
    ("cap", "spend", "spend_period", "capped"),
    [
        (None, "50", "2026-03-01", False),  # no cap
        ("100", "99.99", "2026-03-01", False),  # below it
        ("100", "100", "2026-03-01", True),  # at it
        ("100", "250", "2026-03-01", True),  # above it
        ("100", "250", "2026-02-01", False),  # last month's spend: no run yet this month
        ("100", None, None, False),  # no run has measured the spend
    ],
)
def test_both_checks_apply_the_spend_cap_alike(
    engine: Engine,
    catalog_ready: None,
    cap: str | None,
    spend: str | None,
    spend_period: str | None,
    capped: bool,
) -> None:
    """The database read (`check_quota`) and the API's snapshot answer spend_cap_reached
    in the same cases, with the same numbers (contract 5b)."""
    with engine.begin() as conn:
        usage(conn, "a", "calls", "2026-03-05", "100", 5, "10")
        refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
        if cap is not None:
            conn.execute(
                sa.text(
                    "INSERT INTO spend_caps (tenant_id, amount, updated_at) VALUES ('a', :c, :t)"
                ),
                {"c": Decimal(cap), "t": RUN_AT},
            )
        if spend is not None:
            conn.execute(
                sa.text(
                    "INSERT INTO tenant_spend (tenant_id, period_start, currency, amount, as_of)"
                    " VALUES ('a', :p, 'USD', :s, :t)"
                ),
                {"p": dt.date.fromisoformat(spend_period or ""), "s": Decimal(spend), "t": RUN_AT},
            )
    snapshot = QuotaSnapshot()
    with engine.connect() as conn:
        snapshot.reload(conn, today=TODAY)
        for tenant, metric in [("a", "calls"), ("a", "nope"), ("b", "calls"), ("zed", "calls")]:
            args = {"tenant_id": tenant, "metric": metric, "requested": Decimal(1), "today": TODAY}
            from_db = check_quota(conn, **args)
            assert snapshot.check(**args) == from_db, (tenant, metric)
            if tenant == "a":
                assert (from_db.reason == "spend_cap_reached") is capped
                assert not (capped and from_db.allowed)
            else:
                assert from_db.reason != "spend_cap_reached"


def _row(**changes: Any) -> QuotaRow:
    base: dict[str, Any] = dict(
        tenant_id="t",
        metric="m",
        subscription_id=1,
        plan_code="p",
        period_start=dt.date(2026, 3, 1),
        period_end=dt.date(2026, 4, 1),
        aggregation="sum",
        included=Decimal(0),
        limit=Decimal(10),
        enforcement="hard",
        source="plan",
        used=Decimal(4),
        as_of=RUN_AT,
    )
    base.update(changes)
    return QuotaRow(**base)


@pytest.mark.parametrize(
    ("row", "requested", "subscribed", "allowed", "reason", "remaining"),
    [
        # under the limit
        (_row(), "5", True, True, "within_limit", "6"),
        # exactly reaching the limit
        (_row(), "6", True, True, "within_limit", "6"),
        # one over a hard limit
        (_row(), "7", True, False, "over_limit", "6"),
        # soft limit: allowed, and said so
        (_row(enforcement="soft"), "7", True, True, "over_soft_limit", "6"),
        # unlimited
        (_row(limit=None), "1000000", True, True, "unlimited", None),
        # used beyond the limit: remaining is 0, not negative
        (_row(used=Decimal(12)), "0", True, False, "over_limit", "0"),
        # a row of last month (no refresh yet this month): nothing used in the new period
        (
            _row(
                period_start=dt.date(2026, 2, 1), period_end=dt.date(2026, 3, 1), used=Decimal(10)
            ),
            "10",
            True,
            True,
            "within_limit",
            "10",
        ),
        # no subscription wins over everything
        (_row(), "1", False, False, "no_subscription", None),
        # no row: not entitled
        (None, "1", True, False, "not_entitled", None),
    ],
)
def test_decide(
    row: QuotaRow | None,
    requested: str,
    subscribed: bool,
    allowed: bool,
    reason: str,
    remaining: str | None,
) -> None:
    decision = decide(
        metric="m", requested=Decimal(requested), today=TODAY, has_subscription=subscribed, row=row
    )
    assert (decision.allowed, decision.reason) == (allowed, reason)
    assert decision.remaining == (None if remaining is None else Decimal(remaining))
    assert (decision.period_start, decision.period_end) == BillingPeriod.of(TODAY).bounds


def test_billing_period_of_december() -> None:
    december = BillingPeriod.of(dt.date(2026, 12, 31))
    assert december.bounds == (dt.date(2026, 12, 1), dt.date(2027, 1, 1))


def test_an_older_full_reload_never_undoes_a_newer_tenant_reload(
    engine: Engine, catalog_ready: None
) -> None:
    with engine.begin() as conn:
        refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT)
    snapshot = QuotaSnapshot()
    with engine.connect() as conn:
        snapshot.reload(conn, today=TODAY)
    calls = {"tenant_id": "a", "metric": "calls", "requested": Decimal(1), "today": TODAY}
    assert snapshot.check(**calls).used == Decimal(0)

    old = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    try:
        old.execute(sa.text("SELECT 1"))  # its snapshot is taken here, before the change
        with engine.begin() as conn:
            usage(conn, "a", "calls", "2026-03-10", "60", 1, "60")
            refresh_quota_usage(conn, today=TODAY, as_of=RUN_AT, tenant_ids=["a"])
        with engine.connect() as conn:
            snapshot.reload(conn, today=TODAY, tenant_ids=["a"])
        assert snapshot.check(**calls).used == Decimal(60)
        # a full reload that read the database before the change finishes last
        snapshot.reload(old, today=TODAY)
    finally:
        old.close()
    assert snapshot.check(**calls).used == Decimal(60)
    assert snapshot.check(**{**calls, "tenant_id": "b"}).reason == "within_limit"
