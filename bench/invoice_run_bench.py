"""Benchmark: the month-end invoice run, set-based, against a per-tenant ORM loop.

    uv run python bench/invoice_run_bench.py [--tenants 100000] [--sample 2000]
                                             [--database-url URL] [--keep]

1. Seeds a fresh database (embedded Postgres in a temp folder unless --database-url):
   4 plans (USD, USD, EUR, JPY) with 5 metrics each (per_unit, graduated, volume, package;
   sum/count/max aggregations), N tenants; 5% start mid-month, 5% change plan on the 16th,
   1% have an override of `included` for part of the month; usage_daily for every tenant,
   metric and day of November 2026 (N x 5 x 30 rows).
2. Baseline: a straightforward per-tenant loop through the ORM (subscriptions, lazy plan
   and quotas, one aggregate query per metric, overrides, ORM inserts, a commit per
   tenant) over the first --sample tenants, timed and extrapolated to N. Its drafts are
   then deleted.
3. The real thing: services.invoicing.generate_invoices for every tenant (timed, with its
   phases), a rerun (refreshes every draft: idempotency), and closing the period.
4. Checks that both paths priced the sample identically, and prints invoices/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.period import BillingPeriod  # noqa: E402

from models.money import round_money  # noqa: E402
from models.pricing import pricing_from_row  # noqa: E402
from models.tables import Invoice, InvoiceLine, QuotaOverride, Subscription, UsageDaily  # noqa: E402
from services.invoicing import close_period_invoices, generate_invoices  # noqa: E402
from services.proration import (  # noqa: E402
    billable_quantity,
    effective_included,
    prorate_base_fee,
    subscription_window,
)
from tallyflow.core import migrate  # noqa: E402
from tallyflow.core.db import dispose_engines, get_engine, to_sqlalchemy_url  # noqa: E402
from tallyflow.core.settings import Settings  # noqa: E402

PERIOD = BillingPeriod.parse("2026-11")
METRICS = ["api.calls", "storage.gb", "jobs", "egress.gb", "seats"]

# NOTE: bench-only seeding SQL stays here (it is not part of the product's sql/).
SEED_PLANS = """
INSERT INTO plans (code, name, currency, base_fee) VALUES
  ('starter', 'Starter', 'USD', 19.00), ('pro', 'Pro', 'USD', 99.00),
  ('scale', 'Scale', 'EUR', 499.00), ('jp', 'Japan', 'JPY', 9800)
"""
SEED_QUOTAS = """
INSERT INTO plan_quotas (plan_id, metric, aggregation, included, pricing_model, pricing)
SELECT p.id, m.metric, m.aggregation, m.included, m.model, CAST(m.pricing AS jsonb)
FROM plans p CROSS JOIN (VALUES
  ('api.calls', 'sum', 1000, 'per_unit', '{"model": "per_unit", "unit_price": "0.0021"}'),
  ('storage.gb', 'max', 10, 'graduated', '{"model": "graduated", "tiers": [
      {"up_to": "100", "unit_price": "0.10", "flat_fee": "1.00"},
      {"up_to": "500", "unit_price": "0.07", "flat_fee": "0"},
      {"up_to": null, "unit_price": "0.05", "flat_fee": "0"}]}'),
  ('jobs', 'count', 0, 'volume', '{"model": "volume", "tiers": [
      {"up_to": "500", "unit_price": "0.02", "flat_fee": "2.00"},
      {"up_to": null, "unit_price": "0.015", "flat_fee": "0"}]}'),
  ('egress.gb', 'sum', 50, 'package',
      '{"model": "package", "package_size": "100", "package_price": "4.50"}'),
  ('seats', 'max', 3, 'per_unit', '{"model": "per_unit", "unit_price": "7.333"}')
) AS m(metric, aggregation, included, model, pricing)
"""
# tenant i: plan (i % 4); i % 20 = 1 starts mid-month; i % 20 = 2 changes starter -> pro
SEED_SUBSCRIPTIONS = """
INSERT INTO subscriptions (tenant_id, plan_id, starts_on, ends_on)
SELECT 't' || lpad(i::text, 6, '0'),
       (SELECT id FROM plans WHERE code = CASE
            WHEN i % 20 = 2 THEN 'starter'
            ELSE (ARRAY['starter', 'pro', 'scale', 'jp'])[i % 4 + 1] END),
       CASE WHEN i % 20 = 1 THEN DATE '2026-11-01' + (i % 28) ELSE DATE '2026-01-01' END,
       CASE WHEN i % 20 = 2 THEN DATE '2026-11-16' END
FROM generate_series(1, :tenants) AS i
"""
SEED_PLAN_CHANGES = """
INSERT INTO subscriptions (tenant_id, plan_id, starts_on)
SELECT 't' || lpad(i::text, 6, '0'), (SELECT id FROM plans WHERE code = 'pro'), DATE '2026-11-16'
FROM generate_series(1, :tenants) AS i WHERE i % 20 = 2
"""
SEED_OVERRIDES = """
INSERT INTO quota_overrides (tenant_id, metric, included, effective_from, effective_to)
SELECT 't' || lpad(i::text, 6, '0'), 'api.calls', 50000, DATE '2026-11-10', DATE '2026-11-20'
FROM generate_series(1, :tenants) AS i WHERE i % 100 = 7
"""
SEED_USAGE = """
INSERT INTO usage_daily (tenant_id, metric, usage_date, quantity_sum, event_count,
                         quantity_max, first_occurred_at, last_occurred_at, updated_at)
SELECT 't' || lpad(i::text, 6, '0'), m.metric, DATE '2026-11-01' + d,
       ((i * 7 + d * 13 + m.k * 31) % 1000) + 0.25 * m.k,
       1 + (i + d + m.k) % 50,
       ((i * 7 + d * 13 + m.k * 31) % 1000) + 0.25 * m.k,
       TIMESTAMPTZ '2026-11-01 00:00+00' + make_interval(days => d),
       TIMESTAMPTZ '2026-11-01 23:00+00' + make_interval(days => d),
       TIMESTAMPTZ '2026-12-01 01:00+00'
FROM generate_series(1, :tenants) AS i
CROSS JOIN generate_series(0, 29) AS d
CROSS JOIN (VALUES ('api.calls', 1), ('storage.gb', 2), ('jobs', 3), ('egress.gb', 4),
                   ('seats', 5)) AS m(metric, k)
"""


def seed(engine: sa.Engine, tenants: int) -> None:
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        conn.execute(sa.text(SEED_PLANS))
        conn.execute(sa.text(SEED_QUOTAS))
        # NOTE: the overlap trigger takes one advisory lock per tenant; 100k of them in one
        # transaction exhaust the lock table. The seed is overlap-free by construction.
        conn.execute(sa.text("ALTER TABLE subscriptions DISABLE TRIGGER subscriptions_no_overlap"))
        conn.execute(sa.text(SEED_SUBSCRIPTIONS), {"tenants": tenants})
        conn.execute(sa.text(SEED_PLAN_CHANGES), {"tenants": tenants})
        conn.execute(sa.text("ALTER TABLE subscriptions ENABLE TRIGGER subscriptions_no_overlap"))
        conn.execute(sa.text(SEED_OVERRIDES), {"tenants": tenants})
        # NOTE: bulk load without the indexes, then build them (much faster than
        # maintaining them row by row); a bench-only shortcut.
        conn.execute(sa.text("ALTER TABLE usage_daily DROP CONSTRAINT pk_usage_daily"))
        conn.execute(sa.text("DROP INDEX ix_usage_daily_usage_date"))
        conn.execute(sa.text(SEED_USAGE), {"tenants": tenants})
        conn.execute(
            sa.text(
                "ALTER TABLE usage_daily ADD CONSTRAINT pk_usage_daily"
                " PRIMARY KEY (tenant_id, metric, usage_date)"
            )
        )
        conn.execute(sa.text("CREATE INDEX ix_usage_daily_usage_date ON usage_daily (usage_date)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        rows = conn.execute(sa.text("SELECT count(*) FROM usage_daily")).scalar_one()
        subs = conn.execute(sa.text("SELECT count(*) FROM subscriptions")).scalar_one()
    print(
        f"seeded {tenants:,} tenants, {subs:,} subscriptions, {rows:,} usage_daily rows"
        f" in {time.perf_counter() - t0:.1f} s"
    )


def orm_loop(engine: sa.Engine, tenant_ids: list[str]) -> float:
    """The straightforward way: per tenant, ORM queries, Python pricing, ORM inserts, commit."""
    t0 = time.perf_counter()
    with Session(engine) as session:
        for tenant_id in tenant_ids:
            subs = session.scalars(
                sa.select(Subscription)
                .where(
                    Subscription.tenant_id == tenant_id,
                    Subscription.starts_on < PERIOD.end,
                    sa.or_(Subscription.ends_on.is_(None), Subscription.ends_on > PERIOD.start),
                )
                .order_by(Subscription.starts_on)
            ).all()
            if not subs:
                continue
            invoice = Invoice(
                tenant_id=tenant_id,
                period_start=PERIOD.start,
                period_end=PERIOD.end,
                currency=subs[0].plan.currency,
                status="draft",
                total=Decimal(0),
            )
            for sub in subs:
                plan = sub.plan
                window = subscription_window(sub.starts_on, sub.ends_on, PERIOD)
                assert window is not None
                amount = round_money(prorate_base_fee(plan.base_fee, window, PERIOD), plan.currency)
                invoice.lines.append(
                    InvoiceLine(
                        line_no=len(invoice.lines) + 1,
                        kind="base_fee",
                        subscription_id=sub.id,
                        plan_code=plan.code,
                        description=f"{plan.name} base fee",
                        window_start=window.start,
                        window_end=window.end,
                        quantity=Decimal(window.days),
                        included=Decimal(0),
                        billable_quantity=Decimal(window.days),
                        amount=amount,
                        breakdown={},
                    )
                )
                for quota in plan.quotas:
                    column = {
                        "sum": sa.func.sum(UsageDaily.quantity_sum),
                        "count": sa.func.sum(UsageDaily.event_count),
                        "max": sa.func.max(UsageDaily.quantity_max),
                    }[quota.aggregation]
                    quantity = Decimal(
                        session.scalar(
                            sa.select(column).where(
                                UsageDaily.tenant_id == tenant_id,
                                UsageDaily.metric == quota.metric,
                                UsageDaily.usage_date >= window.start,
                                UsageDaily.usage_date < window.end,
                            )
                        )
                        or 0
                    )
                    overrides = session.scalars(
                        sa.select(QuotaOverride).where(
                            QuotaOverride.tenant_id == tenant_id,
                            QuotaOverride.metric == quota.metric,
                            QuotaOverride.included.is_not(None),
                        )
                    ).all()
                    days = []
                    for o in overrides:
                        start = max(window.start, o.effective_from or window.start)
                        end = min(window.end, o.effective_to or window.end)
                        if start < end:
                            assert o.included is not None
                            days.append((o.included, (end - start).days))
                    included = effective_included(quota.included, window, days)
                    billable = billable_quantity(quantity, included)
                    priced = pricing_from_row(quota.pricing_model, quota.pricing).compute(billable)
                    invoice.lines.append(
                        InvoiceLine(
                            line_no=len(invoice.lines) + 1,
                            kind="usage",
                            subscription_id=sub.id,
                            plan_code=plan.code,
                            metric=quota.metric,
                            description=quota.metric,
                            window_start=window.start,
                            window_end=window.end,
                            quantity=quantity,
                            included=included,
                            billable_quantity=billable,
                            pricing_model=quota.pricing_model,
                            amount=round_money(priced.amount, plan.currency),
                            breakdown={"items": priced.breakdown_json()},
                        )
                    )
            invoice.total = sum((li.amount for li in invoice.lines), Decimal(0))
            session.add(invoice)
            session.commit()
    return time.perf_counter() - t0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a local process (the Postgres backend), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_totals(engine: sa.Engine, tenant_ids: list[str]) -> dict[str, Decimal]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT tenant_id, total FROM invoices WHERE status <> 'void'"
                " AND tenant_id = ANY(:t)"
            ),
            {"t": tenant_ids},
        ).all()
    return {r.tenant_id: r.total for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the embedded database folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tallyflow-invoice-bench-"))
    server = None
    if args.database_url:
        url = to_sqlalchemy_url(args.database_url)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(tmp / "pg", cleanup_mode=None if args.keep else "delete")
            url = to_sqlalchemy_url(server.get_uri())
    try:
        engine = get_engine(Settings(database_url=url))
        migrate.upgrade(engine)
        seed(engine, args.tenants)

        sample = [f"t{i:06d}" for i in range(1, args.sample + 1)]
        orm_s = orm_loop(engine, sample)
        orm_totals = sample_totals(engine, sample)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM invoices"))
        orm_rate = len(orm_totals) / orm_s
        print(
            f"ORM per-tenant loop: {len(orm_totals):,} invoices in {orm_s:.1f} s"
            f" = {orm_rate:,.0f} invoices/s; extrapolated to {args.tenants:,} tenants:"
            f" {args.tenants / orm_rate:,.0f} s"
        )

        runs = []
        for label in ("first run", "rerun (refresh)"):
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            with engine.begin() as conn:
                backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                pg0 = _cpu_seconds(backend)
                result = generate_invoices(conn, PERIOD)
                pg_cpu = _cpu_seconds(backend) - pg0
            seconds = time.perf_counter() - t0
            py_cpu = time.process_time() - cpu0
            runs.append(seconds)
            print(
                f"set-based {label}: {result.generated:,} invoices in {seconds:.1f} s"
                f" = {result.generated / seconds:,.0f} invoices/s; phases {dict(result.timings)};"
                f" CPU: Python {py_cpu:.1f} s, Postgres backend {pg_cpu:.1f} s"
                f" (+ parallel workers); load average {os.getloadavg()[0]:.1f}"
            )
        first_ids = sorted(result.invoice_ids)
        with engine.connect() as conn:
            invoices, lines = conn.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM invoices), (SELECT count(*) FROM invoice_lines)"
                )
            ).one()
        assert invoices == len(first_ids), "the rerun must not duplicate invoices"
        print(
            f"  invoices: {invoices:,}, invoice lines: {lines:,};"
            f" totals {result.totals_by_currency()}"
        )

        set_totals = sample_totals(engine, sample)
        mismatches = [t for t in orm_totals if orm_totals[t] != set_totals.get(t)]
        print(
            f"  sample check: {len(orm_totals) - len(mismatches):,}/{len(orm_totals):,}"
            " equal totals"
        )

        t0 = time.perf_counter()
        with engine.begin() as conn:
            closed = close_period_invoices(conn, PERIOD)
        print(
            f"close the period: {len(closed):,} invoices numbered in"
            f" {time.perf_counter() - t0:.1f} s"
        )

        best = min(runs)
        print(
            f"\nRESULT: {result.generated:,} invoices; set-based {runs[0]:.1f} s"
            f" ({result.generated / runs[0]:,.0f}/s), ORM loop extrapolated"
            f" {args.tenants / orm_rate:,.0f} s ({orm_rate:,.0f}/s):"
            f" {(args.tenants / orm_rate) / runs[0]:.0f}x faster"
            f" (best run {best:.1f} s, target < 60 s: {'met' if runs[0] < 60 else 'MISSED'})"
        )
        if mismatches:
            raise SystemExit(
                f"sample totals differ for {len(mismatches)} tenants, e.g. {mismatches[:5]}"
            )
    finally:
        dispose_engines()
        if server is not None and not args.keep:
            server.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
