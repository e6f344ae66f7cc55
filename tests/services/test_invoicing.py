"""The invoice run and the invoice lifecycle against a real Postgres.

The seed helpers at the top are shared with the flow and API tests of invoicing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from decimal import Decimal as D
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from models.pricing import parse_pricing
from services.invoicing import (
    BillableWindow,
    PlanTerms,
    QuotaTerms,
    UsageTotals,
    close_invoice,
    compute_invoice,
    generate_invoices,
    get_invoice,
    late_usage_in_closed_periods,
    list_invoices,
    unsubscribed_usage,
    void_invoice,
)
from services.proration import Window
from tallyflow.core.errors import Conflict, NotFound

NOV = BillingPeriod.parse("2026-11")
JAN = BillingPeriod.parse("2027-01")

# --- seed helpers (direct SQL: the catalog API is another module's business) ---------------


def seed_plan(
    conn: sa.Connection,
    code: str,
    *,
    currency: str = "USD",
    base_fee: str = "0",
    quotas: dict[str, dict[str, Any]] | None = None,
) -> int:
    """A plan with quotas: {metric: {"pricing": {...}, "included": "0", "aggregation": "sum"}}."""
    plan_id = int(
        conn.execute(
            sa.text(
                "INSERT INTO plans (code, name, currency, base_fee)"
                " VALUES (:code, :name, :currency, :base_fee) RETURNING id"
            ),
            {"code": code, "name": code.title(), "currency": currency, "base_fee": D(base_fee)},
        ).scalar_one()
    )
    for metric, q in (quotas or {}).items():
        pricing = parse_pricing(q["pricing"])
        conn.execute(
            sa.text(
                "INSERT INTO plan_quotas (plan_id, metric, aggregation, included, pricing_model,"
                " pricing) VALUES (:p, :m, :a, :i, :model, CAST(:pricing AS jsonb))"
            ),
            {
                "p": plan_id,
                "m": metric,
                "a": q.get("aggregation", "sum"),
                "i": D(q.get("included", "0")),
                "model": pricing.model,
                "pricing": json.dumps(pricing.to_json()),
            },
        )
    return plan_id


def subscribe(
    conn: sa.Connection, tenant: str, plan_id: int, starts_on: str, ends_on: str | None = None
) -> int:
    return int(
        conn.execute(
            sa.text(
                "INSERT INTO subscriptions (tenant_id, plan_id, starts_on, ends_on)"
                " VALUES (:t, :p, :s, :e) RETURNING id"
            ),
            {
                "t": tenant,
                "p": plan_id,
                "s": dt.date.fromisoformat(starts_on),
                "e": dt.date.fromisoformat(ends_on) if ends_on else None,
            },
        ).scalar_one()
    )


def add_usage(
    conn: sa.Connection,
    tenant: str,
    metric: str,
    day: str,
    quantity_sum: str,
    *,
    event_count: int = 1,
    quantity_max: str | None = None,
    updated_at: dt.datetime | None = None,
) -> None:
    """One usage_daily row (replaces an existing one for the same key)."""
    at = dt.datetime.fromisoformat(day + "T12:00:00+00:00")
    conn.execute(
        sa.text(
            "INSERT INTO usage_daily (tenant_id, metric, usage_date, quantity_sum, event_count,"
            " quantity_max, first_occurred_at, last_occurred_at, updated_at)"
            " VALUES (:t, :m, :d, :s, :c, :mx, :at, :at, COALESCE(:u, now()))"
            " ON CONFLICT (tenant_id, metric, usage_date) DO UPDATE SET"
            " quantity_sum = EXCLUDED.quantity_sum, event_count = EXCLUDED.event_count,"
            " quantity_max = EXCLUDED.quantity_max, updated_at = EXCLUDED.updated_at"
        ),
        {
            "t": tenant,
            "m": metric,
            "d": dt.date.fromisoformat(day),
            "s": D(quantity_sum),
            "c": event_count,
            "mx": D(quantity_max if quantity_max is not None else quantity_sum),
            "at": at,
            "u": updated_at,
        },
    )


def add_override(
    conn: sa.Connection,
    tenant: str,
    metric: str,
    included: str,
    effective_from: str | None = None,
    effective_to: str | None = None,
) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO quota_overrides (tenant_id, metric, included, effective_from,"
            " effective_to) VALUES (:t, :m, :i, :f, :to)"
        ),
        {
            "t": tenant,
            "m": metric,
            "i": D(included),
            "f": dt.date.fromisoformat(effective_from) if effective_from else None,
            "to": dt.date.fromisoformat(effective_to) if effective_to else None,
        },
    )


PER_UNIT = {"model": "per_unit", "unit_price": "0.01"}
GRADUATED = {
    "model": "graduated",
    "tiers": [
        {"up_to": "1000", "unit_price": "0", "flat_fee": "5"},
        {"up_to": None, "unit_price": "0.002"},
    ],
}


def seed_basic(engine: Engine) -> dict[str, int]:
    """Two USD tenants on 'pro' for all of November, one JPY tenant on 'jp'."""
    with engine.begin() as conn:
        pro = seed_plan(
            conn,
            "pro",
            base_fee="30.00",
            quotas={
                "api.calls": {"pricing": PER_UNIT, "included": "100"},
                "storage.gb": {"pricing": GRADUATED, "aggregation": "max"},
            },
        )
        jp = seed_plan(
            conn,
            "jp",
            currency="JPY",
            base_fee="1000",
            quotas={"api.calls": {"pricing": {"model": "per_unit", "unit_price": "0.15"}}},
        )
        subscribe(conn, "acme", pro, "2026-01-01")
        subscribe(conn, "beta", pro, "2026-11-16")
        subscribe(conn, "nihon", jp, "2026-11-01", "2026-12-01")
        for day in ("2026-11-02", "2026-11-20"):
            add_usage(conn, "acme", "api.calls", day, "1000.5", event_count=7)
            add_usage(conn, "acme", "storage.gb", day, "10", quantity_max="1500")
        add_usage(conn, "beta", "api.calls", "2026-11-10", "5000")  # before beta's start
        add_usage(conn, "beta", "api.calls", "2026-11-16", "150")
        add_usage(conn, "nihon", "api.calls", "2026-11-05", "333")
        add_usage(conn, "ghost", "api.calls", "2026-11-05", "9")  # no subscription
        add_usage(conn, "acme", "api.calls", "2026-12-01", "99999")  # next period
    return {"pro": pro, "jp": jp}


def _generate(engine: Engine, period: BillingPeriod = NOV, **kw: Any) -> Any:
    with engine.begin() as conn:
        return generate_invoices(conn, period, **kw)


def _invoice_of(engine: Engine, tenant: str, period: BillingPeriod = NOV) -> Any:
    with engine.connect() as conn:
        (inv,) = [
            i
            for i in list_invoices(conn, tenant, period=period, with_lines=True)
            if i.status != "void" and i.kind == "invoice"
        ]
        return inv


# --- the invoice run ---------------------------------------------------------------------


def test_generate_prices_each_tenant(engine: Engine) -> None:
    seed_basic(engine)
    result = _generate(engine)
    assert (result.generated, result.skipped, result.closed) == (3, 0, 0)

    acme = _invoice_of(engine, "acme")
    assert acme.status == "draft" and acme.currency == "USD" and acme.number is None
    lines = {(li.kind, li.metric): li for li in acme.lines}
    # base fee: whole month
    assert lines["base_fee", None].amount == D("30.00")
    # api.calls: 2001 - 100 included = 1901 x 0.01 = 19.01
    assert lines["usage", "api.calls"].quantity == D("2001")
    assert lines["usage", "api.calls"].billable_quantity == D("1901")
    assert lines["usage", "api.calls"].amount == D("19.01")
    # storage.gb (max): 1500 -> 5 flat + 500 x 0.002 = 6.00
    assert lines["usage", "storage.gb"].quantity == D("1500")
    assert lines["usage", "storage.gb"].amount == D("6.00")
    assert acme.total == D("55.01") == sum(li.amount for li in acme.lines)
    assert [li.line_no for li in acme.lines] == [1, 2, 3]

    beta = _invoice_of(engine, "beta")
    lines = {(li.kind, li.metric): li for li in beta.lines}
    # starts on the 16th: 15/30 of 30.00; usage before the start is not beta's plan's
    assert lines["base_fee", None].amount == D("15.00")
    assert lines["usage", "api.calls"].quantity == D("150")
    assert lines["usage", "api.calls"].amount == D("0.50")
    # graduated at 0 billable: the first tier's flat fee
    assert lines["usage", "storage.gb"].amount == D("5.00")
    assert beta.total == D("20.50")

    nihon = _invoice_of(engine, "nihon")
    # JPY: 1000 + 333 x 0.15 = 49.95 -> 50 (no minor unit)
    assert nihon.currency == "JPY"
    assert [li.amount for li in nihon.lines] == [D("1000"), D("50")]
    assert nihon.total == D("1050")
    assert sorted(result.totals_by_currency().items()) == [("JPY", D("1050")), ("USD", D("75.51"))]


def test_rerun_gives_identical_drafts(engine: Engine) -> None:
    seed_basic(engine)
    first = _generate(engine)
    before = _invoice_of(engine, "acme")
    second = _generate(engine)
    after = _invoice_of(engine, "acme")
    assert sorted(first.invoice_ids) == sorted(second.invoice_ids)
    assert (first.updated, second.updated) == (3, 0)  # the rerun wrote nothing
    assert after.updated_at == before.updated_at
    assert (before.id, before.total, before.lines) == (after.id, after.total, after.lines)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM invoices")).scalar_one()
    assert count == 3


def test_lines_copied_in_several_statements_are_the_same(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One COPY statement per COPY_TENANTS drafts: with one draft per statement, the run
    writes the same lines as with one statement for all (a rerun finds nothing to change)."""
    from services.invoicing import batches

    seed_basic(engine)
    monkeypatch.setattr(batches, "COPY_TENANTS", 1)
    first = _generate(engine)  # new drafts: lines COPYed into invoice_lines, 3 statements
    totals = {t: _invoice_of(engine, t).total for t in ("acme", "beta", "nihon")}
    assert totals == {"acme": D("55.01"), "beta": D("20.50"), "nihon": D("1050")}
    again = _generate(engine)  # known drafts: lines COPYed to the stage, 3 statements
    monkeypatch.setattr(batches, "COPY_TENANTS", 1000)
    once = _generate(engine)  # one statement
    assert (first.updated, again.updated, once.updated) == (3, 0, 0)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM invoice_lines")).scalar_one() == 8


def test_rerun_refreshes_a_draft_with_new_usage(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-21", "100")
    before = _invoice_of(engine, "acme")
    result = _generate(engine)
    after = _invoice_of(engine, "acme")
    assert result.updated == 1 and after.id == before.id
    assert after.total == D("56.01") and after.updated_at > before.updated_at
    changed = [a.line_no for a, b in zip(after.lines, before.lines, strict=True) if a != b]
    assert changed == [2]  # only the api.calls line was rewritten


def test_closed_invoices_are_never_touched(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    with engine.begin() as conn:
        closed = close_invoice(conn, acme.id)
    with engine.begin() as conn:
        add_usage(conn, "acme", "api.calls", "2026-11-21", "100")  # late usage
    result = _generate(engine)
    # the late usage goes on a draft adjustment of its own (contract 5.2), not on the invoice
    assert result.skipped == 0 and result.generated == 2
    ((correction),) = result.corrections
    assert (correction.kind, correction.corrects_invoice_id, correction.total) == (
        "adjustment",
        acme.id,
        D("1.00"),
    )
    again = _invoice_of(engine, "acme")
    assert (again.id, again.status, again.total, again.lines) == (
        closed.id,
        "closed",
        D("55.01"),
        closed.lines,
    )
    with engine.connect() as conn:
        late = late_usage_in_closed_periods(conn)
    assert [(x.tenant_id, x.metric, x.usage_days) for x in late] == [("acme", "api.calls", 1)]


def test_void_then_regenerate_creates_a_fresh_draft(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    with engine.begin() as conn:
        close_invoice(conn, acme.id)
        voided = void_invoice(conn, acme.id)
    assert voided.status == "void" and voided.voided_at is not None
    assert voided.number is not None  # a voided closed invoice keeps its number
    _generate(engine, tenant_ids=["acme"])
    fresh = _invoice_of(engine, "acme")
    assert fresh.id != acme.id and fresh.status == "draft" and fresh.total == D("55.01")
    with engine.connect() as conn:
        statuses = [i.status for i in list_invoices(conn, "acme")]
        assert sorted(statuses) == ["draft", "void"]
        assert [i.status for i in list_invoices(conn, "acme", status="void")] == ["void"]


def test_tenant_filter_only_touches_those_tenants(engine: Engine) -> None:
    seed_basic(engine)
    result = _generate(engine, tenant_ids=["beta"])
    assert result.generated == 1
    with engine.connect() as conn:
        tenants = conn.execute(sa.text("SELECT tenant_id FROM invoices")).scalars().all()
    assert tenants == ["beta"]


def test_unknown_tenant_generates_nothing(engine: Engine) -> None:
    seed_basic(engine)
    result = _generate(engine, tenant_ids=["nobody"])
    assert (result.generated, result.skipped, result.invoice_ids) == (0, 0, [])


def test_stale_draft_is_removed(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM invoice_lines"))
        conn.execute(
            sa.text("UPDATE subscriptions SET starts_on = '2026-12-01' WHERE tenant_id = 'beta'")
        )
    result = _generate(engine)
    assert result.removed == 1 and result.generated == 2


def test_unsubscribed_usage_is_reported(engine: Engine) -> None:
    seed_basic(engine)
    with engine.connect() as conn:
        rows = unsubscribed_usage(conn, NOV)
    assert [(r.tenant_id, r.usage_days, r.events) for r in rows] == [("ghost", 1, 1)]


def test_plan_change_splits_usage_and_allowance(engine: Engine) -> None:
    # January (31 days): basic until the 16th (exclusive), pro from the 16th.
    with engine.begin() as conn:
        basic = seed_plan(
            conn,
            "basic",
            base_fee="31.00",
            quotas={"api.calls": {"pricing": PER_UNIT, "included": "100"}},
        )
        pro = seed_plan(
            conn,
            "pro",
            base_fee="62.00",
            quotas={"api.calls": {"pricing": {"model": "per_unit", "unit_price": "0.001"}}},
        )
        subscribe(conn, "acme", basic, "2026-12-01", "2027-01-16")
        subscribe(conn, "acme", pro, "2027-01-16")
        add_usage(conn, "acme", "api.calls", "2027-01-15", "300")  # basic's last day
        add_usage(conn, "acme", "api.calls", "2027-01-16", "5000")  # pro's first day
    _generate(engine, JAN)
    inv = _invoice_of(engine, "acme", JAN)
    got = [
        (li.plan_code, li.kind, li.quantity, li.billable_quantity, li.amount) for li in inv.lines
    ]
    assert got == [
        ("basic", "base_fee", D(15), D(15), D("15.00")),  # 15/31 of 31
        ("basic", "usage", D(300), D(200), D("2.00")),  # 300 - 100 included
        ("pro", "base_fee", D(16), D(16), D("32.00")),  # 16/31 of 62
        ("pro", "usage", D(5000), D(5000), D("5.00")),  # no allowance on pro
    ]
    assert inv.total == D("54.00")


def test_aggregations_count_and_max(engine: Engine) -> None:
    with engine.begin() as conn:
        plan = seed_plan(
            conn,
            "agg",
            quotas={
                "jobs": {
                    "pricing": {"model": "per_unit", "unit_price": "1"},
                    "aggregation": "count",
                },
                "seats": {
                    "pricing": {"model": "per_unit", "unit_price": "10"},
                    "aggregation": "max",
                },
            },
        )
        subscribe(conn, "acme", plan, "2026-11-01")
        add_usage(conn, "acme", "jobs", "2026-11-01", "999", event_count=3)
        add_usage(conn, "acme", "jobs", "2026-11-02", "999", event_count=4)
        add_usage(conn, "acme", "seats", "2026-11-01", "5", quantity_max="3")
        add_usage(conn, "acme", "seats", "2026-11-02", "2", quantity_max="2")
    _generate(engine)
    inv = _invoice_of(engine, "acme")
    assert {li.metric: (li.quantity, li.amount) for li in inv.lines if li.kind == "usage"} == {
        "jobs": (D(7), D("7.00")),  # count = sum of event_count
        "seats": (D(3), D("30.00")),  # max of quantity_max
    }


def test_partial_override_is_day_weighted(engine: Engine) -> None:
    with engine.begin() as conn:
        plan = seed_plan(conn, "pro", quotas={"api.calls": {"pricing": PER_UNIT, "included": "0"}})
        subscribe(conn, "acme", plan, "2026-11-01")
        # included 3000 for Nov 1..10 (effective_to exclusive): 10 of 30 days -> 1000
        add_override(conn, "acme", "api.calls", "3000", "2026-10-01", "2026-11-11")
        add_usage(conn, "acme", "api.calls", "2026-11-05", "1500")
    _generate(engine)
    (line,) = [li for li in _invoice_of(engine, "acme").lines if li.kind == "usage"]
    assert (line.included, line.billable_quantity, line.amount) == (D(1000), D(500), D("5.00"))
    assert line.breakdown["included_rule"]["overrides"] == [{"included": "3000.000000", "days": 10}]


def test_full_override_replaces_included(engine: Engine) -> None:
    with engine.begin() as conn:
        plan = seed_plan(
            conn, "pro", quotas={"api.calls": {"pricing": PER_UNIT, "included": "100"}}
        )
        subscribe(conn, "acme", plan, "2026-11-01")
        add_override(conn, "acme", "api.calls", "5000")
        add_usage(conn, "acme", "api.calls", "2026-11-05", "1500")
    _generate(engine)
    (line,) = [li for li in _invoice_of(engine, "acme").lines if li.kind == "usage"]
    # included larger than usage: billable 0, cost 0
    assert (line.included, line.billable_quantity, line.amount) == (D(5000), D(0), D("0.00"))


def test_three_decimal_currency(engine: Engine) -> None:
    with engine.begin() as conn:
        plan = seed_plan(
            conn,
            "bh",
            currency="BHD",
            base_fee="10.000",
            quotas={"api.calls": {"pricing": {"model": "per_unit", "unit_price": "0.0005"}}},
        )
        subscribe(conn, "manama", plan, "2027-01-17")
        add_usage(conn, "manama", "api.calls", "2027-01-20", "1")
    _generate(engine, JAN)
    inv = _invoice_of(engine, "manama", JAN)
    # 10 x 15/31 = 4.8387.. -> 4.839; 1 x 0.0005 -> 0.001 (half-up)
    assert [li.amount for li in inv.lines] == [D("4.839"), D("0.001")]
    assert inv.total == D("4.840")


def test_mixed_currencies_are_skipped(engine: Engine) -> None:
    with engine.begin() as conn:
        usd = seed_plan(conn, "usd", base_fee="10")
        eur = seed_plan(conn, "eur", currency="EUR", base_fee="10")
        subscribe(conn, "acme", usd, "2026-10-01", "2026-11-15")
        subscribe(conn, "acme", eur, "2026-11-15")
    result = _generate(engine)
    assert result.skipped_tenants == {"acme": "mixed_currencies"}
    assert result.generated == 0


def test_close_numbers_are_unique_and_sequential(engine: Engine) -> None:
    seed_basic(engine)
    at = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
    result = _generate(engine, close=True, now=at)
    assert result.closed == 3
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT tenant_id, number, closed_at FROM invoices ORDER BY tenant_id")
        ).all()
    numbers = [r.number for r in rows]
    # gapless per (series, UTC year of closing), numbered in tenant order
    assert numbers == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]
    assert all(r.closed_at == at for r in rows)
    # a second run with close: nothing left to generate or close
    again = _generate(engine, close=True, now=at)
    # re-rated closed invoices: nothing differs, so no correction and nothing to close
    assert (again.generated, again.skipped, again.closed, again.corrections) == (0, 0, 0, ())


# --- lifecycle -----------------------------------------------------------------------------


def test_illegal_transitions_are_conflicts_naming_the_status(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    with engine.begin() as conn:
        close_invoice(conn, acme.id)
    with engine.begin() as conn, pytest.raises(Conflict) as info:
        close_invoice(conn, acme.id)
    assert info.value.code == "invoice_not_draft" and "is closed" in info.value.message
    with engine.begin() as conn:
        void_invoice(conn, acme.id)
    with engine.begin() as conn, pytest.raises(Conflict) as info:
        void_invoice(conn, acme.id)
    assert info.value.code == "invoice_already_void" and "void" in info.value.message
    with engine.begin() as conn, pytest.raises(Conflict) as info:
        close_invoice(conn, acme.id)
    assert "is void" in info.value.message


def test_void_a_draft(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    beta = _invoice_of(engine, "beta")
    with engine.begin() as conn:
        voided = void_invoice(conn, beta.id)
    assert (voided.status, voided.number, voided.closed_at) == ("void", None, None)


def test_unknown_invoice_is_not_found(engine: Engine) -> None:
    with engine.begin() as conn:
        for action in (close_invoice, void_invoice, get_invoice):
            with pytest.raises(NotFound):
                action(conn, 424242)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE invoices SET total = total + 1 WHERE id = :id",
        "UPDATE invoices SET status = 'draft', number = NULL, closed_at = NULL WHERE id = :id",
        "UPDATE invoices SET number = 'X-1' WHERE id = :id",
        "UPDATE invoice_lines SET amount = amount + 1 WHERE invoice_id = :id",
        "DELETE FROM invoice_lines WHERE invoice_id = :id",
        "INSERT INTO invoice_lines (invoice_id, line_no, kind, plan_code, description,"
        " window_start, window_end, quantity, billable_quantity, amount)"
        " VALUES (:id, 99, 'base_fee', 'x', 'x', '2026-11-01', '2026-12-01', 1, 1, 1)",
        "DELETE FROM invoices WHERE id = :id",
    ],
)
def test_database_refuses_changes_to_a_closed_invoice(engine: Engine, statement: str) -> None:
    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    with engine.begin() as conn:
        close_invoice(conn, acme.id)
    with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
        conn.execute(sa.text(statement), {"id": acme.id})
    assert getattr(info.value.orig, "sqlstate", None) == "55000"
    assert f"invoice {acme.id} is closed" in str(info.value.orig)  # names the invoice
    assert _invoice_of(engine, "acme").lines == acme.lines


def test_database_refuses_changes_to_a_void_invoice(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    beta = _invoice_of(engine, "beta")
    with engine.begin() as conn:
        void_invoice(conn, beta.id)
    with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE invoices SET status = 'draft' WHERE id = :id"), {"id": beta.id}
        )
    # the void trigger's own error, not any database error
    assert getattr(info.value.orig, "sqlstate", None) == "55000"
    assert "is void" in str(info.value.orig)


def test_drafts_stay_editable_by_the_run(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    beta = _invoice_of(engine, "beta")
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE invoice_lines SET description = 'x' WHERE invoice_id = :id"),
            {"id": beta.id},
        )


# --- references of invoice lines (migration 0012: checked per statement, not declared) ----

_LINE_INSERT = (
    "INSERT INTO invoice_lines (invoice_id, line_no, kind, subscription_id, plan_code,"
    " description, window_start, window_end, quantity, billable_quantity, amount)"
    " VALUES (:invoice_id, :line_no, 'base_fee', :subscription_id, 'pro', 'x', '2026-11-01',"
    " '2026-12-01', 1, 1, 1)"
)


def _refused(engine: Engine, statement: str, params: dict[str, Any]) -> str:
    """The message of the foreign_key_violation the statement gets (nothing is written)."""
    with pytest.raises(sa.exc.IntegrityError) as info, engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    assert getattr(info.value.orig, "sqlstate", None) == "23503"
    return str(info.value.orig)


def _subscription_of(engine: Engine, tenant: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT id FROM subscriptions WHERE tenant_id = :t"), {"t": tenant}
            ).scalar_one()
        )


def _line_count(engine: Engine, invoice_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM invoice_lines WHERE invoice_id = :i"),
                {"i": invoice_id},
            ).scalar_one()
        )


def test_a_line_of_a_missing_invoice_or_subscription_is_refused(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    message = _refused(
        engine, _LINE_INSERT, {"invoice_id": 424242, "line_no": 1, "subscription_id": None}
    )
    assert "invoice 424242 does not exist" in message
    message = _refused(
        engine, _LINE_INSERT, {"invoice_id": acme.id, "line_no": 99, "subscription_id": 424243}
    )
    assert f"line 99 of invoice {acme.id}: subscription 424243 does not exist" in message
    # one bad line among good ones fails the whole statement
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(_LINE_INSERT),
            [
                {"invoice_id": acme.id, "line_no": 98, "subscription_id": None},
                {"invoice_id": 424242, "line_no": 1, "subscription_id": None},
            ],
        )
    moved = _refused(
        engine,
        "UPDATE invoice_lines SET invoice_id = 424242 WHERE invoice_id = :id",
        {"id": acme.id},
    )
    assert "invoice 424242 does not exist" in moved
    assert _invoice_of(engine, "acme").lines == acme.lines


def test_a_line_cannot_bill_another_tenants_subscription(engine: Engine) -> None:
    """Stronger than the foreign key it replaces: the subscription must be the invoice's
    tenant's."""
    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    beta_subscription = _subscription_of(engine, "beta")
    message = _refused(
        engine,
        _LINE_INSERT,
        {"invoice_id": acme.id, "line_no": 99, "subscription_id": beta_subscription},
    )
    assert (
        f"line 99 of invoice {acme.id} (tenant acme): subscription {beta_subscription}"
        " is tenant beta's" in message
    )
    with engine.begin() as conn:  # its own subscription is fine
        conn.execute(
            sa.text(_LINE_INSERT),
            {
                "invoice_id": acme.id,
                "line_no": 99,
                "subscription_id": _subscription_of(engine, "acme"),
            },
        )
    assert _line_count(engine, acme.id) == len(acme.lines) + 1


def test_deleting_a_draft_deletes_its_lines(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    beta, acme = _invoice_of(engine, "beta"), _invoice_of(engine, "acme")
    assert _line_count(engine, beta.id) > 0
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM invoices WHERE id = :id"), {"id": beta.id})
    assert _line_count(engine, beta.id) == 0
    assert _line_count(engine, acme.id) == len(acme.lines)  # nobody else's


def test_an_invoiced_subscription_cannot_be_deleted(engine: Engine) -> None:
    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    subscription = _subscription_of(engine, "acme")
    message = _refused(engine, "DELETE FROM subscriptions WHERE id = :id", {"id": subscription})
    assert f"subscription {subscription} is invoiced (invoice {acme.id})" in message
    with engine.begin() as conn:  # once its draft is gone, it can go
        conn.execute(sa.text("DELETE FROM invoices WHERE id = :id"), {"id": acme.id})
        conn.execute(sa.text("DELETE FROM subscriptions WHERE id = :id"), {"id": subscription})


@pytest.mark.parametrize("table", ["invoices", "subscriptions"])
def test_ids_never_change(engine: Engine, table: str) -> None:
    seed_basic(engine)
    _generate(engine)
    with engine.connect() as conn:
        row_id = int(
            conn.execute(sa.text(f"SELECT id FROM {table} WHERE tenant_id = 'beta'")).scalar_one()
        )
    message = _refused(engine, f"UPDATE {table} SET id = id + 1000 WHERE id = :id", {"id": row_id})
    assert f"{table} {row_id}: its id cannot change" in message


def test_a_written_line_holds_its_invoice_until_commit(engine: Engine) -> None:
    """The statement check locks the referred rows as a foreign key check does: while a
    transaction that wrote a line is open, nobody can delete its invoice or subscription."""
    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    subscription = _subscription_of(engine, "acme")
    with engine.connect() as writer:
        writer.execute(
            sa.text(_LINE_INSERT),
            {"invoice_id": acme.id, "line_no": 99, "subscription_id": subscription},
        )
        for statement, key in [
            ("DELETE FROM invoices WHERE id = :id", acme.id),
            ("DELETE FROM subscriptions WHERE id = :id", subscription),
        ]:
            with pytest.raises(sa.exc.OperationalError) as info, engine.begin() as other:
                other.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
                other.execute(sa.text(statement), {"id": key})
            assert getattr(info.value.orig, "sqlstate", None) == "55P03"  # lock_not_available
        writer.rollback()
    assert _invoice_of(engine, "acme").lines == acme.lines


def test_the_checks_run_with_the_owners_rights(engine: Engine) -> None:
    """As a declared key's checks do: a role that may write lines and delete invoices, but
    may not lock subscriptions (FOR KEY SHARE needs UPDATE rights) nor delete lines, still
    writes a checked line and deletes a draft with its lines; a wrong line is still refused."""
    import uuid

    seed_basic(engine)
    _generate(engine)
    acme = _invoice_of(engine, "acme")
    role = f"tf_writer_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text(f'GRANT SELECT ON invoices, subscriptions TO "{role}"'))
        conn.execute(sa.text(f'GRANT SELECT, INSERT ON invoice_lines TO "{role}"'))
        conn.execute(sa.text(f'GRANT DELETE ON invoices TO "{role}"'))
        conn.execute(sa.text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    limited = sa.create_engine(engine.url.set(username=role, password=None))
    try:
        with limited.begin() as conn:
            conn.execute(
                sa.text(_LINE_INSERT),
                {
                    "invoice_id": acme.id,
                    "line_no": 99,
                    "subscription_id": _subscription_of(engine, "acme"),
                },
            )
        assert "invoice 424242 does not exist" in _refused(
            limited, _LINE_INSERT, {"invoice_id": 424242, "line_no": 1, "subscription_id": None}
        )
        with limited.begin() as conn:
            conn.execute(sa.text("DELETE FROM invoices WHERE id = :id"), {"id": acme.id})
        assert _line_count(engine, acme.id) == 0
    finally:
        limited.dispose()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))


def test_reference_migration_downgrades_to_declared_keys(engine: Engine) -> None:
    """0012's downgrade puts the two foreign keys back (validated against the lines that
    exist) and the upgrade takes them away again, with the same rules."""
    from tallyflow.core import migrate

    seed_basic(engine)
    _generate(engine)
    keys = sa.text(
        "SELECT conname FROM pg_constraint"
        " WHERE conrelid = 'invoice_lines'::regclass AND contype = 'f' ORDER BY conname"
    )
    with engine.connect() as conn:
        assert conn.execute(keys).scalars().all() == []
    migrate.downgrade(engine, "0011_lines_freeze_check")
    engine.dispose()
    with engine.connect() as conn:
        assert conn.execute(keys).scalars().all() == [
            "fk_invoice_lines_invoice_id_invoices",
            "fk_invoice_lines_subscription_id_subscriptions",
        ]
    assert "violates foreign key constraint" in _refused(
        engine, _LINE_INSERT, {"invoice_id": 424242, "line_no": 1, "subscription_id": None}
    )
    migrate.upgrade(engine)
    engine.dispose()
    with engine.connect() as conn:
        assert conn.execute(keys).scalars().all() == []
    assert "invoice 424242 does not exist" in _refused(
        engine, _LINE_INSERT, {"invoice_id": 424242, "line_no": 1, "subscription_id": None}
    )


def test_the_lines_statement_check_is_named_for_what_it_checks(engine: Engine) -> None:
    """0013 renames the function; the triggers keep calling it, with the owner's rights."""
    from tallyflow.core import migrate

    called = sa.text(
        "SELECT DISTINCT p.proname, p.prosecdef FROM pg_trigger AS t"
        " JOIN pg_proc AS p ON p.oid = t.tgfoid"
        " WHERE t.tgrelid = 'invoice_lines'::regclass AND NOT t.tgisinternal"
    )
    with engine.connect() as conn:
        assert conn.execute(called).all() == [("invoice_lines_check_statement", True)]
    migrate.downgrade(engine, "0012_lines_reference_check")
    engine.dispose()
    with engine.connect() as conn:
        assert conn.execute(called).all() == [("invoice_lines_refuse_frozen_change", True)]
    migrate.upgrade(engine)
    engine.dispose()
    seed_basic(engine)
    _generate(engine)  # the renamed check still lets the run's COPY through ...
    assert "invoice 424242 does not exist" in _refused(  # ... and still refuses
        engine, _LINE_INSERT, {"invoice_id": 424242, "line_no": 1, "subscription_id": None}
    )


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_runs_produce_one_invoice_per_tenant(engine: Engine) -> None:
    seed_basic(engine)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(tenants: list[str] | None) -> None:
        try:
            barrier.wait()
            _generate(engine, tenant_ids=tenants)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(t,)) for t in (None, None, ["acme"], ["acme", "beta"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT tenant_id, count(*) AS n, min(status) AS status FROM invoices"
                " GROUP BY tenant_id ORDER BY tenant_id"
            )
        ).all()
        lines = conn.execute(
            sa.text("SELECT invoice_id, count(*) FROM invoice_lines GROUP BY invoice_id")
        ).all()
    assert [(r.tenant_id, r.n) for r in rows] == [("acme", 1), ("beta", 1), ("nihon", 1)]
    assert sorted(n for _, n in lines) == [2, 3, 3]


# --- pure core properties ------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10**5, places=4)


@st.composite
def billable_windows(draw: st.DrawFn) -> list[BillableWindow]:
    currency = draw(st.sampled_from(["USD", "JPY", "BHD"]))
    cut = draw(st.integers(1, 29))
    cuts = [NOV.start, NOV.start + dt.timedelta(days=cut), NOV.end]
    if draw(st.booleans()):
        cuts = [NOV.start, NOV.end]
    out = []
    for i, (start, end) in enumerate(itertools.pairwise(cuts)):
        quotas = tuple(
            QuotaTerms(
                metric=f"m{j}",
                aggregation="sum",
                included=draw(amounts),
                pricing=(
                    p := parse_pricing({"model": "per_unit", "unit_price": str(draw(amounts))})
                ),
                pricing_json=p.to_json(),
            )
            for j in range(draw(st.integers(0, 3)))
        )
        plan = PlanTerms(i, f"p{i}", f"P{i}", currency, draw(amounts), quotas)
        usage = {q.metric: UsageTotals(quantity_sum=draw(amounts)) for q in quotas}
        out.append(BillableWindow(i, plan, Window(start, end), usage))
    return out


@settings(max_examples=200, deadline=None)
@given(billable_windows())
def test_invoice_total_is_the_sum_of_its_rounded_lines(windows: list[BillableWindow]) -> None:
    invoice = compute_invoice("t", NOV, windows)
    assert invoice.total == sum(li.amount for li in invoice.lines)
    assert all(li.amount >= 0 for li in invoice.lines)
    assert all(
        li.amount
        == li.amount.quantize(D(1).scaleb(-{"USD": 2, "JPY": 0, "BHD": 3}[invoice.currency]))
        for li in invoice.lines
    )
    base = sum(li.quantity for li in invoice.lines if li.kind == "base_fee")
    assert base == NOV.days  # the windows cover the month once


def test_freeze_migration_downgrades_and_upgrades(engine: Engine) -> None:
    from tallyflow.core import migrate

    seed_basic(engine)
    _generate(engine, close=True)
    statement = sa.text("UPDATE invoices SET updated_at = now() WHERE tenant_id = 'acme'")
    migrate.downgrade(engine, "0002")
    engine.dispose()
    with engine.begin() as conn:  # without 0003 nothing guards a closed invoice
        conn.execute(statement)
    migrate.upgrade(engine)
    engine.dispose()
    with engine.begin() as conn:  # updated_at alone is not frozen
        conn.execute(statement)
    with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
        conn.execute(sa.text("UPDATE invoices SET total = 0 WHERE tenant_id = 'acme'"))
    assert getattr(info.value.orig, "sqlstate", None) == "55000"  # the freeze trigger
