"""Preview (contract 5.1): the same code path as the run, nothing written."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.period import BillingPeriod
from services.invoicing import (
    close_invoice,
    generate_invoices,
    list_invoices,
    preview_invoice,
)
from tallyflow.core.errors import Conflict, NotFound
from tests.services.test_invoicing import add_override, add_usage, seed_plan, subscribe

NOV = BillingPeriod.parse("2026-11")
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)

PRICINGS = [
    {"model": "per_unit", "unit_price": "0.0013"},
    {
        "model": "graduated",
        "tiers": [
            {"up_to": "100", "unit_price": "0", "flat_fee": "2.5"},
            {"up_to": "1000", "unit_price": "0.01"},
            {"up_to": None, "unit_price": "0.004"},
        ],
    },
    {
        "model": "volume",
        "tiers": [
            {"up_to": "500", "unit_price": "0.02", "flat_fee": "1"},
            {"up_to": None, "unit_price": "0.015"},
        ],
    },
    {"model": "package", "package_size": "250", "package_price": "3.10"},
]


def seed_generated(engine: Engine, seed: int) -> list[str]:
    """Random tenants, plans, plan changes, overrides and daily usage in November 2026."""
    rng = random.Random(seed)
    metrics = [f"m{i}" for i in range(4)]
    tenants = [f"t{i}" for i in range(8)]
    with engine.begin() as conn:
        plans = []
        for p in range(3):
            quotas = {
                m: {
                    "pricing": rng.choice(PRICINGS),
                    "included": str(rng.choice([0, 10, 250])),
                    "aggregation": rng.choice(["sum", "count", "max"]),
                }
                for m in rng.sample(metrics, rng.randint(1, 4))
            }
            fee = str(D(rng.randint(0, 9000)) / 100)
            plans.append(seed_plan(conn, f"p{p}", base_fee=fee, quotas=quotas))
        for t in tenants:
            if rng.random() < 0.4:  # a plan change inside the month
                cut = f"2026-11-{rng.randint(2, 28):02d}"
                subscribe(conn, t, rng.choice(plans), "2026-10-01", cut)
                subscribe(conn, t, rng.choice(plans), cut)
            else:
                subscribe(conn, t, rng.choice(plans), f"2026-11-{rng.randint(1, 20):02d}")
            if rng.random() < 0.3:
                add_override(conn, t, rng.choice(metrics), "300", "2026-11-05", "2026-11-15")
            for day in rng.sample(range(1, 31), 12):
                for m in rng.sample(metrics, 2):
                    q = str(D(rng.randint(0, 10**7)) / 1000)
                    add_usage(conn, t, m, f"2026-11-{day:02d}", q, event_count=rng.randint(1, 40))
    return tenants


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_preview_equals_the_draft_the_run_writes(engine: Engine, seed: int) -> None:
    tenants = seed_generated(engine, seed)
    with engine.connect() as conn:
        previews = {t: preview_invoice(conn, t, NOV, now=NOW) for t in tenants}
        assert conn.execute(sa.text("SELECT count(*) FROM invoices")).scalar_one() == 0
    with engine.begin() as conn:
        generate_invoices(conn, NOV)
    with engine.connect() as conn:
        for t in tenants:
            (draft,) = list_invoices(conn, t, period=NOV, with_lines=True)
            p = previews[t]
            assert (p.status, p.id, p.number, p.kind) == ("preview", None, None, "invoice")
            assert (p.currency, p.total) == (draft.currency, draft.total), t
            assert p.lines == draft.lines, t
            assert [str(li.amount) for li in p.lines] == [str(li.amount) for li in draft.lines]


def test_preview_of_a_closed_period_shows_the_correction_a_run_would_write(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        plan = seed_plan(conn, "pro", quotas={"calls": {"pricing": PRICINGS[0]}})
        subscribe(conn, "acme", plan, "2026-11-01")
        add_usage(conn, "acme", "calls", "2026-11-03", "10000")
    with engine.begin() as conn:
        (invoice_id,) = generate_invoices(conn, NOV).invoice_ids
        close_invoice(conn, invoice_id, now=NOW)
    with engine.connect() as conn:
        same = preview_invoice(conn, "acme", NOV, now=NOW)
    assert (same.closed_invoice_id, same.correction) == (invoice_id, None)
    with engine.begin() as conn:
        add_usage(conn, "acme", "calls", "2026-11-30", "1000")  # late: +1.30
    with engine.connect() as conn:
        late = preview_invoice(conn, "acme", NOV, now=NOW)
    assert late.total == D("14.30") and late.correction is not None
    assert (late.correction.kind, late.correction.total) == ("adjustment", D("1.30"))
    with engine.connect() as conn:  # still nothing written
        assert conn.execute(sa.text("SELECT count(*) FROM invoices")).scalar_one() == 1


def test_preview_errors(engine: Engine) -> None:
    with engine.begin() as conn:
        usd = seed_plan(conn, "usd", base_fee="10")
        eur = seed_plan(conn, "eur", currency="EUR", base_fee="10")
        subscribe(conn, "mixed", usd, "2026-10-01", "2026-11-15")
        subscribe(conn, "mixed", eur, "2026-11-15")
    with engine.connect() as conn:
        with pytest.raises(NotFound) as missing:
            preview_invoice(conn, "nobody", NOV, now=NOW)
        assert missing.value.code == "no_subscription"
        with pytest.raises(Conflict) as mixed:
            preview_invoice(conn, "mixed", NOV, now=NOW)
        assert mixed.value.code == "mixed_currencies"
