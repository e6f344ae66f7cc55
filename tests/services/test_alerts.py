"""Alerts: measures (pure), crossing once per alert and period against a real Postgres,
the spend measure, and the events they write to the webhook outbox."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from models.spend import AlertIn
from services.alerts import AlertState, alert_measure, evaluate_alerts, list_alerts, replace_alerts
from services.invoicing import preview_invoice
from services.quota import QuotaSnapshot, check_quota, refresh_quota_usage
from services.spend import Spend, measure_spend, spend_cap
from services.webhooks.endpoints import create_endpoint
from tests.helpers import TEST_BOX, rows
from tests.services.test_invoicing import GRADUATED, PER_UNIT, add_usage, seed_plan, subscribe

NOV = BillingPeriod.parse("2026-11")
DEC = BillingPeriod.parse("2026-12")
NOV_20 = dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)
DEC_02 = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)


def state(kind: str, threshold: str, **kw: Any) -> AlertState:
    return AlertState(
        id=1,
        tenant_id="acme",
        kind=kind,
        metric=kw.pop("metric", "api.calls"),
        threshold=D(threshold),
        **kw,
    )


@pytest.mark.parametrize(
    ("alert", "spend", "expected"),
    [
        # percent of the effective limit
        (state("usage_percent", "80", quota_used=D(800), quota_limit=D(1000)), None, D(80)),
        # unlimited or a zero limit: no percentage, never fires
        (state("usage_percent", "80", quota_used=D(800), quota_limit=None), None, None),
        (state("usage_percent", "80", quota_used=D(5), quota_limit=D(0)), None, None),
        # absolute: the quota's used (plan aggregation) first ...
        (state("usage_absolute", "500", quota_used=D(700), usage_total=D(9)), None, D(700)),
        # ... else the period's usage_daily total; no usage at all is 0
        (state("usage_absolute", "500", usage_total=D(9)), None, D(9)),
        (state("usage_absolute", "500"), None, D(0)),
        # spend: the period's spend; none measured (no subscription) -> nothing
        (state("spend", "35", metric=None), Spend("acme", "USD", D("36.00")), D("36.00")),
        (state("spend", "35", metric=None), None, None),
    ],
)
def test_alert_measure(alert: AlertState, spend: Spend | None, expected: D | None) -> None:
    assert alert_measure(alert, spend) == expected


@pytest.fixture
def acme(engine: Engine) -> None:
    """acme on 'pro' (USD 30.00/month, api.calls 0.01 each over 100, limit 1000) from Nov 1;
    an endpoint subscribed to both threshold events; four alerts."""
    with engine.begin() as conn:
        plan = seed_plan(
            conn,
            "pro",
            base_fee="30.00",
            quotas={"api.calls": {"pricing": PER_UNIT, "included": "100"}},
        )
        conn.execute(sa.text('UPDATE plan_quotas SET "limit" = 1000'))
        subscribe(conn, "acme", plan, "2026-11-01")
        create_endpoint(
            conn,
            url="http://127.0.0.1:9/hook",
            events=["usage.threshold_reached", "spend.threshold_reached"],
            allow_private=True,
            now=NOV_20,
            box=TEST_BOX,
        )
        replace_alerts(
            conn,
            "acme",
            [
                AlertIn(metric="api.calls", threshold_percent=D(80)),
                AlertIn(metric="api.calls", threshold=D(500)),
                AlertIn(metric="storage.gb", threshold=D(10)),  # not in the plan: usage_daily
                AlertIn(spend=D("35.00")),
            ],
            now=NOV_20,
        )


def run(engine: Engine, now: dt.datetime, usage: list[tuple[str, str, str]] = ()) -> list[Any]:  # type: ignore[assignment]
    """What an ingest run's commit does: usage, quota refresh, then alerts (one transaction)."""
    with engine.begin() as conn:
        for metric, day, quantity in usage:
            add_usage(conn, "acme", metric, day, quantity)
        refresh_quota_usage(conn, today=now.date(), as_of=now)
        return evaluate_alerts(conn, tenant_ids=None, period=BillingPeriod.of(now.date()), now=now)


def fired(result: list[Any]) -> list[tuple[str, D]]:
    return sorted((f.event_type, f.measure) for f in result)


@pytest.mark.usefixtures("acme")
def test_each_alert_fires_once_per_period(engine: Engine) -> None:
    # 700 calls: 70 % (no), >= 500 (yes); spend 30.00 + 6.00 = 36.00 >= 35.00 (yes)
    assert fired(run(engine, NOV_20, [("api.calls", "2026-11-03", "700")])) == [
        ("spend.threshold_reached", D("36.00")),
        ("usage.threshold_reached", D(700)),
    ]
    # 900 calls: 90 % fires now; the others already fired this period
    assert fired(run(engine, NOV_20, [("api.calls", "2026-11-04", "200")])) == [
        ("usage.threshold_reached", D(90)),
    ]
    # 12 GB of a metric outside the plan: the usage_daily total
    assert fired(run(engine, NOV_20, [("storage.gb", "2026-11-05", "12")])) == [
        ("usage.threshold_reached", D(12)),
    ]
    assert run(engine, NOV_20) == []  # nothing more, however often it runs

    with engine.connect() as conn:
        listed = list_alerts(conn, "acme", period=NOV)
    assert all(a.triggered_at == NOV_20 for a in listed.alerts)
    events = rows(
        engine, "SELECT type, tenant_id, data FROM webhook_events ORDER BY occurred_at, id"
    )
    assert len(events) == 4
    percent_event = next(e for e in events if "threshold_percent" in e[2])
    assert {
        k: percent_event[2][k] for k in ("metric", "threshold_percent", "percent", "used", "limit")
    } == {
        "metric": "api.calls",
        "threshold_percent": "80",
        "percent": "90.00",
        "used": "900",
        "limit": "1000",
    }
    assert rows(engine, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'") == [
        (4,)
    ]
    spend_event = next(e for e in events if e[0] == "spend.threshold_reached")
    assert spend_event[2] | {"alert_id": 0} == {
        "alert_id": 0,
        "tenant_id": "acme",
        "period": "2026-11",
        "period_start": "2026-11-01",
        "period_end": "2026-12-01",
        "threshold": "35.00",
        "spend": "36.00",
        "currency": "USD",
    }

    # December: a new period, every alert may fire again (once)
    assert run(engine, DEC_02) == []  # base fee 30.00 < 35.00, no usage yet
    with engine.connect() as conn:
        assert all(a.triggered_at is None for a in list_alerts(conn, "acme", period=DEC).alerts)
    assert fired(run(engine, DEC_02, [("api.calls", "2026-12-01", "600")])) == [
        ("spend.threshold_reached", D("35.00")),
        ("usage.threshold_reached", D(600)),
    ]


@pytest.mark.usefixtures("acme")
def test_replacing_the_set_keeps_repeated_alerts_and_their_triggers(engine: Engine) -> None:
    run(engine, NOV_20, [("api.calls", "2026-11-03", "700")])
    with engine.begin() as conn:
        before = {
            a.threshold: a for a in list_alerts(conn, "acme", period=NOV).alerts if a.threshold
        }
        after = replace_alerts(
            conn,
            "acme",
            [
                AlertIn(metric="api.calls", threshold=D(500)),
                AlertIn(metric="api.calls", threshold=D(600)),
            ],
            now=NOV_20,
        )
    kept = next(a for a in after.alerts if a.threshold == D(500))
    assert kept.id == before[D(500)].id and kept.triggered_at == NOV_20
    new = next(a for a in after.alerts if a.threshold == D(600))
    assert new.triggered_at is None
    assert len(after.alerts) == 2
    assert fired(run(engine, NOV_20)) == [("usage.threshold_reached", D(700))]  # the new one


@pytest.mark.usefixtures("acme")
def test_spend_is_the_preview_total_true_up_included(engine: Engine) -> None:
    """Contract 5b: spend = the period's preview total, so a plan's minimum commitment
    counts (the period costs at least that); prepaid credits do not lower it."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE plans SET minimum_commitment = 500"))
        conn.execute(
            sa.text(
                "INSERT INTO credit_grants (tenant_id, currency, amount, remaining,"
                " effective_from) VALUES ('acme', 'USD', 100, 100, '2026-10-01')"
            )
        )
        spend = measure_spend(conn, NOV, ["acme", "nobody"])
        preview = preview_invoice(conn, "acme", NOV, now=NOV_20)
    assert spend == {"acme": Spend("acme", "USD", D("500.00"))}
    assert preview.total == D("500.00")
    assert [li.amount for li in preview.lines if li.kind == "credit"] == [D("-100.00")]


def test_spend_alerts_and_caps_measure_the_preview_total_on_generated_data(
    engine: Engine,
) -> None:
    """Tenants on random plans (base fee, minimum commitment or none, tiers or per-unit,
    JPY or USD), random usage, grants and caps: every recorded spend, every spend event and
    every cap decision uses exactly the preview total."""
    rng = random.Random(16)
    tenants = [f"t{n:02d}" for n in range(12)]
    with engine.begin() as conn:
        plans = []
        for n in range(4):
            currency = rng.choice(["USD", "JPY"])
            plan = seed_plan(
                conn,
                f"p{n}",
                currency=currency,
                base_fee=rng.choice(["0", "9.99", "30"]) if currency == "USD" else "1000",
                quotas={
                    "api.calls": {
                        "pricing": rng.choice([PER_UNIT, GRADUATED]),
                        "included": str(rng.choice([0, 100])),
                    }
                },
            )
            minimum = rng.choice([None, "50", "20000"])
            conn.execute(
                sa.text("UPDATE plans SET minimum_commitment = :m WHERE id = :p"),
                {"m": D(minimum) if minimum else None, "p": plan},
            )
            plans.append(plan)
        for tenant in tenants:
            subscribe(conn, tenant, rng.choice(plans), rng.choice(["2026-11-01", "2026-11-11"]))
            for day in rng.sample(range(1, 20), 3):
                add_usage(
                    conn, tenant, "api.calls", f"2026-11-{day:02d}", str(rng.randint(0, 5000))
                )
            conn.execute(
                sa.text(
                    "INSERT INTO alerts (tenant_id, kind, metric, threshold)"
                    " VALUES (:t, 'spend', NULL, :x)"
                ),
                {"t": tenant, "x": D(rng.choice(["1", "40", "100000"]))},
            )
            if rng.random() < 0.5:
                conn.execute(
                    sa.text("INSERT INTO spend_caps (tenant_id, amount) VALUES (:t, :x)"),
                    {"t": tenant, "x": D(rng.choice(["10", "60", "1000000"]))},
                )
            if rng.random() < 0.5:
                conn.execute(
                    sa.text(
                        "INSERT INTO credit_grants (tenant_id, currency, amount, remaining,"
                        " effective_from) SELECT :t, currency, 25, 25, '2026-10-01' FROM plans"
                        " JOIN subscriptions s ON s.plan_id = plans.id WHERE s.tenant_id = :t"
                    ),
                    {"t": tenant},
                )
        refresh_quota_usage(conn, today=NOV_20.date(), as_of=NOV_20)
        fired = evaluate_alerts(conn, tenant_ids=None, period=NOV, now=NOV_20)
    with engine.connect() as conn:
        previews = {t: preview_invoice(conn, t, NOV, now=NOV_20) for t in tenants}
        recorded = dict(rows(engine, "SELECT tenant_id, amount FROM tenant_spend"))
        events = {f.tenant_id: f.measure for f in fired if f.event_type.startswith("spend.")}
        thresholds = dict(rows(engine, "SELECT tenant_id, threshold FROM alerts"))
        caps = dict(rows(engine, "SELECT tenant_id, amount FROM spend_caps"))
        snapshot = QuotaSnapshot()
        snapshot.reload(conn, today=NOV_20.date())
        for tenant, preview in previews.items():
            assert recorded[tenant] == preview.total, tenant
            assert (tenant in events) is (preview.total >= thresholds[tenant]), tenant
            if tenant in events:
                assert events[tenant] == preview.total
            capped = tenant in caps and preview.total >= caps[tenant]
            args = {
                "tenant_id": tenant,
                "metric": "api.calls",
                "requested": D(1),
                "today": NOV_20.date(),
            }
            assert (check_quota(conn, **args).reason == "spend_cap_reached") is capped, tenant
            assert snapshot.check(**args) == check_quota(conn, **args)
            cap = spend_cap(conn, tenant, today=NOV_20.date())
            assert cap.spend == preview.total and cap.reached is capped
    assert events, "some spend alert fired"
    assert any(capped for capped in [t in caps and previews[t].total >= caps[t] for t in tenants])
