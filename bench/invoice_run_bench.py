"""Benchmark: the month-end invoice run, set-based, against a per-tenant ORM loop.

    uv run python bench/invoice_run_bench.py [--tenants 100000] [--sample 2000]
                                             [--billable-metrics [--groups 20]]
                                             [--database-url URL] [--keep]
                                             [--digest] [--profile FILE]

1. Seeds a fresh database (embedded Postgres in a temp folder unless --database-url):
   4 plans (USD, USD, EUR, JPY) with 5 metrics each (per_unit, graduated, volume, package;
   sum/count/max aggregations), N tenants; 5% start mid-month, 5% change plan on the 16th,
   1% have an override of `included` for part of the month; usage_daily for every tenant,
   metric and day of November 2026 (N x 5 x 30 rows).
   With --billable-metrics: the five billable metrics of bench/metrics_bench.py are created
   through `services.metrics.catalog.create_metric` and every plan (created through
   `services.catalog.create_plan`) also has a quota on each: tokens by model priced with
   `matrix` (5 models with their own price and included, a default for the rest), mau
   (unique_count, graduated), storage (time_weighted_sum, per_unit), p95_latency
   (percentile, volume), eu_calls (sum with a region filter, package). metric_usage is
   seeded set-based in the shape an ingest stores it (services.metrics.compute): per tenant
   the calendar-month window and each subscription window, per window a row for each of
   --groups models (20: every tenant uses every model) and the total row.
2. Baseline: a straightforward per-tenant loop through the ORM (subscriptions, lazy plan
   and quotas, one aggregate query per metric, overrides, ORM inserts, a commit per
   tenant; billable-metric quotas priced from metric_usage rows read per tenant and window)
   over the first --sample tenants, timed and extrapolated to N. Its drafts are then deleted.
3. The real thing: services.invoicing.generate_invoices for every tenant (timed, with its
   phases), a rerun (refreshes every draft: idempotency), and closing the period.
4. Checks that both paths priced the sample identically, that the run wrote the expected
   number of lines and one `group`-carrying line per (subscription window, model) (exit 1
   otherwise), and prints invoices/s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _harness  # noqa: E402  (this folder is on sys.path)
from metrics_bench import FIVE_METRICS  # noqa: E402

from models.api import PlanIn  # noqa: E402
from models.money import round_money  # noqa: E402
from models.period import BillingPeriod  # noqa: E402
from models.pricing import pricing_from_row  # noqa: E402
from models.pricing.matrix import Matrix  # noqa: E402
from models.tables import (  # noqa: E402
    Invoice,
    InvoiceLine,
    MetricUsage,
    Plan,
    PlanQuota,
    QuotaOverride,
    Subscription,
    UsageDaily,
)
from services.catalog import create_plan  # noqa: E402
from services.invoicing import (  # noqa: E402
    Parallelism,
    close_period_invoices,
    generate_invoices,
    invoice_run_transaction,
)
from services.metrics.catalog import create_metric  # noqa: E402
from services.proration import (  # noqa: E402
    Window,
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

PLANS = [  # code, name, currency, base fee
    ("starter", "Starter", "USD", "19.00"),
    ("pro", "Pro", "USD", "99.00"),
    ("scale", "Scale", "EUR", "499.00"),
    ("jp", "Japan", "JPY", "9800"),
]
EVENT_QUOTAS: list[dict[str, Any]] = [
    {
        "metric": "api.calls",
        "aggregation": "sum",
        "included": "1000",
        "pricing": {"model": "per_unit", "unit_price": "0.0021"},
    },
    {
        "metric": "storage.gb",
        "aggregation": "max",
        "included": "10",
        "pricing": {
            "model": "graduated",
            "tiers": [
                {"up_to": "100", "unit_price": "0.10", "flat_fee": "1.00"},
                {"up_to": "500", "unit_price": "0.07", "flat_fee": "0"},
                {"up_to": None, "unit_price": "0.05", "flat_fee": "0"},
            ],
        },
    },
    {
        "metric": "jobs",
        "aggregation": "count",
        "included": "0",
        "pricing": {
            "model": "volume",
            "tiers": [
                {"up_to": "500", "unit_price": "0.02", "flat_fee": "2.00"},
                {"up_to": None, "unit_price": "0.015", "flat_fee": "0"},
            ],
        },
    },
    {
        "metric": "egress.gb",
        "aggregation": "sum",
        "included": "50",
        "pricing": {"model": "package", "package_size": "100", "package_price": "4.50"},
    },
    {
        "metric": "seats",
        "aggregation": "max",
        "included": "3",
        "pricing": {"model": "per_unit", "unit_price": "7.333"},
    },
]
MODELS = [f"model-{i:02d}" for i in range(1, 21)]  # BILLABLE_MODELS of the generator
# NOTE: quotas on the five billable metrics (no `aggregation`: they take the metric's).
# tokens: 5 models with their own included and price (one graduated), a default for the rest.
METRIC_QUOTAS: list[dict[str, Any]] = [
    {
        "metric": "tokens",
        "pricing": {
            "model": "matrix",
            "prices": [
                {
                    "match": {"model": "model-01"},
                    "included": "20000",
                    "pricing": {
                        "model": "graduated",
                        "tiers": [
                            {"up_to": "50000", "unit_price": "0.00003", "flat_fee": "0"},
                            {"up_to": None, "unit_price": "0.00002", "flat_fee": "0"},
                        ],
                    },
                },
                *(
                    {
                        "match": {"model": MODELS[k]},
                        "included": str(5000 * k),
                        "pricing": {"model": "per_unit", "unit_price": f"0.0000{k + 1}"},
                    }
                    for k in range(1, 5)
                ),
            ],
            "default": {
                "included": "1000",
                "pricing": {"model": "per_unit", "unit_price": "0.000004"},
            },
        },
    },
    {
        "metric": "mau",
        "included": "50",
        "pricing": {
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_price": "0.05", "flat_fee": "0"},
                {"up_to": None, "unit_price": "0.03", "flat_fee": "0"},
            ],
        },
    },
    {
        "metric": "storage",
        "included": "100",
        "pricing": {"model": "per_unit", "unit_price": "0.00021"},
    },
    {
        "metric": "p95_latency",
        "included": "0",
        "pricing": {
            "model": "volume",
            "tiers": [
                {"up_to": "300", "unit_price": "0", "flat_fee": "0"},
                {"up_to": None, "unit_price": "0.01", "flat_fee": "5.00"},
            ],
        },
    },
    {
        "metric": "eu_calls",
        "included": "1000",
        "pricing": {"model": "package", "package_size": "1000", "package_price": "0.40"},
    },
]

# NOTE: bench-only seeding SQL stays here (it is not part of the product's sql/).
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

# The windows metric_usage holds (services.metrics.compute, create_metric_windows): per
# tenant with events the calendar month, plus each subscription window (one row when equal).
SEED_METRIC_WINDOWS = """
CREATE TEMP TABLE bench_metric_windows ON COMMIT DROP AS
WITH sub AS (
    SELECT s.tenant_id, GREATEST(s.starts_on, DATE '2026-11-01') AS window_start,
           LEAST(COALESCE(s.ends_on, DATE '2026-12-01'), DATE '2026-12-01') AS window_end
    FROM subscriptions AS s
    WHERE s.starts_on < DATE '2026-12-01' AND (s.ends_on IS NULL OR s.ends_on > DATE '2026-11-01')
)
SELECT tenant_id, CAST(substr(tenant_id, 2) AS int) AS i, window_start, window_end,
       window_end - window_start AS days
FROM sub
UNION
SELECT tenant_id, CAST(substr(tenant_id, 2) AS int), DATE '2026-11-01', DATE '2026-12-01', 30
FROM sub
"""
# tokens: :groups models per window (tenant i uses models i+1 .. i+groups, mod 20); the
# group_key is the canonical JSON text services.metrics.store.group_key writes.
SEED_TOKEN_GROUPS = """
INSERT INTO metric_usage (metric_code, tenant_id, period_start, window_start, window_end,
                          group_key, group_values, value, as_of)
SELECT 'tokens', w.tenant_id, DATE '2026-11-01', w.window_start, w.window_end,
       '{"model": "' || m.model || '"}', jsonb_build_object('model', m.model),
       round(((w.i * 37 + m.k * 1009) % 200000 + 0.125) * w.days / 30, 6),
       TIMESTAMPTZ '2026-12-01 01:00+00'
FROM bench_metric_windows AS w
CROSS JOIN generate_series(0, :groups - 1) AS g(n)
CROSS JOIN LATERAL (
    SELECT (w.i + g.n) % 20 + 1 AS k,
           'model-' || lpad(CAST((w.i + g.n) % 20 + 1 AS text), 2, '0') AS model
) AS m
"""
# the total of a sum metric is the sum of its groups (every event is in one group)
SEED_TOKEN_TOTALS = """
INSERT INTO metric_usage (metric_code, tenant_id, period_start, window_start, window_end,
                          group_key, group_values, value, as_of)
SELECT metric_code, tenant_id, period_start, window_start, window_end, '', NULL, sum(value),
       TIMESTAMPTZ '2026-12-01 01:00+00'
FROM metric_usage
WHERE metric_code = 'tokens'
GROUP BY metric_code, tenant_id, period_start, window_start, window_end
"""
# the ungrouped metrics: one total row per window each
SEED_METRIC_TOTALS = """
INSERT INTO metric_usage (metric_code, tenant_id, period_start, window_start, window_end,
                          group_key, group_values, value, as_of)
SELECT m.code, w.tenant_id, DATE '2026-11-01', w.window_start, w.window_end, '', NULL,
       CASE m.code
           WHEN 'mau' THEN 1 + (w.i * 13 + w.days) % 3000
           WHEN 'storage' THEN round(((w.i * 17) % 100000 + 0.333333) * w.days / 30, 6)
           WHEN 'p95_latency' THEN 40.5 + (w.i * 7 + w.days) % 600
           ELSE round(((w.i * 11) % 50000) * w.days / 30.0, 6)
       END,
       TIMESTAMPTZ '2026-12-01 01:00+00'
FROM bench_metric_windows AS w
CROSS JOIN (VALUES ('mau'), ('storage'), ('p95_latency'), ('eu_calls')) AS m(code)
"""


def seed_catalog(conn: sa.Connection, billable_metrics: bool) -> None:
    """The plans (and, with billable_metrics, the five metrics) through the services."""
    quotas = EVENT_QUOTAS
    if billable_metrics:
        for metric in FIVE_METRICS:
            create_metric(conn, metric)
        quotas = [*EVENT_QUOTAS, *METRIC_QUOTAS]
    for code, name, currency, base_fee in PLANS:
        create_plan(
            conn,
            PlanIn.model_validate(
                {
                    "code": code,
                    "name": name,
                    "currency": currency,
                    "base_fee": base_fee,
                    "quotas": quotas,
                }
            ),
        )


def seed_metric_usage(conn: sa.Connection, groups: int) -> None:
    """metric_usage rows of November for every tenant, window and group (set-based)."""
    conn.execute(sa.text("ALTER TABLE metric_usage DROP CONSTRAINT pk_metric_usage"))
    conn.execute(sa.text("DROP INDEX ix_metric_usage_metric_period"))
    conn.execute(sa.text("DROP INDEX ix_metric_usage_tenant_window"))
    conn.execute(sa.text(SEED_METRIC_WINDOWS))
    conn.execute(sa.text(SEED_TOKEN_GROUPS), {"groups": groups})
    conn.execute(sa.text(SEED_TOKEN_TOTALS))
    conn.execute(sa.text(SEED_METRIC_TOTALS))
    conn.execute(
        sa.text(
            "ALTER TABLE metric_usage ADD CONSTRAINT pk_metric_usage PRIMARY KEY"
            " (metric_code, tenant_id, window_start, window_end, group_key)"
        )
    )
    conn.execute(
        sa.text(
            "CREATE INDEX ix_metric_usage_metric_period ON metric_usage (metric_code, period_start)"
        )
    )
    conn.execute(
        sa.text(
            "CREATE INDEX ix_metric_usage_tenant_window ON metric_usage (tenant_id, window_start)"
        )
    )


def seed(engine: sa.Engine, tenants: int, *, billable_metrics: bool, groups: int) -> None:
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        seed_catalog(conn, billable_metrics)
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
        if billable_metrics:
            seed_metric_usage(conn, groups)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        rows = conn.execute(sa.text("SELECT count(*) FROM usage_daily")).scalar_one()
        subs = conn.execute(sa.text("SELECT count(*) FROM subscriptions")).scalar_one()
        metric_rows = conn.execute(sa.text("SELECT count(*) FROM metric_usage")).scalar_one()
    print(
        f"seeded {tenants:,} tenants, {subs:,} subscriptions, {rows:,} usage_daily rows,"
        f" {metric_rows:,} metric_usage rows in {time.perf_counter() - t0:.1f} s"
    )


def orm_loop(engine: sa.Engine, tenant_ids: list[str], metric_codes: frozenset[str]) -> float:
    """The straightforward way: per tenant, ORM queries, Python pricing, ORM inserts, commit.

    A quota on a billable metric (`metric_codes`) is priced from the tenant's metric_usage
    rows of the window: the total, or each group by its matrix entry.
    """
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
                    if quota.metric in metric_codes:
                        invoice.lines.extend(
                            _orm_metric_lines(session, tenant_id, sub, window, quota, plan, invoice)
                        )
                        continue
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


def _orm_metric_lines(
    session: Session,
    tenant_id: str,
    sub: Subscription,
    window: Window,
    quota: PlanQuota,
    plan: Plan,
    invoice: Invoice,
) -> list[InvoiceLine]:
    """A billable metric's usage line(s) of one window: one per group under matrix pricing."""
    rows = session.scalars(
        sa.select(MetricUsage)
        .where(
            MetricUsage.tenant_id == tenant_id,
            MetricUsage.metric_code == quota.metric,
            MetricUsage.window_start == window.start,
            MetricUsage.window_end == window.end,
        )
        .order_by(MetricUsage.group_key)
    ).all()
    pricing = pricing_from_row(quota.pricing_model, quota.pricing)
    first = len(invoice.lines) + 1
    common = {
        "kind": "usage",
        "subscription_id": sub.id,
        "plan_code": plan.code,
        "metric": quota.metric,
        "description": quota.metric,
        "window_start": window.start,
        "window_end": window.end,
        "pricing_model": quota.pricing_model,
    }
    if isinstance(pricing, Matrix):
        lines = []
        for r in rows:
            if r.group_key == "":
                continue
            assert r.group_values is not None
            price = pricing.price_group(r.group_values, r.value)
            lines.append(
                InvoiceLine(
                    line_no=first + len(lines),
                    quantity=r.value,
                    included=price.included,
                    billable_quantity=price.billable,
                    amount=round_money(price.result.amount, plan.currency),
                    breakdown={"items": price.result.breakdown_json()},
                    group=r.group_values,
                    **common,
                )
            )
        return lines
    quantity = next((r.value for r in rows if r.group_key == ""), Decimal(0))
    billable = billable_quantity(quantity, quota.included)
    priced = pricing.compute(billable)
    return [
        InvoiceLine(
            line_no=first,
            quantity=quantity,
            included=quota.included,
            billable_quantity=billable,
            amount=round_money(priced.amount, plan.currency),
            breakdown={"items": priced.breakdown_json()},
            **common,
        )
    ]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a local process (the Postgres backend), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_cpu(backend: int) -> float:
    """CPU of the whole local Postgres server so far: the postmaster, its live processes and
    those it has reaped (the pricing workers' backends end with the run), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
        own = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    total = sum(int(f) for f in own[11:15])  # utime, stime, cutime, cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def check_lines(
    engine: sa.Engine, lines: int, event_quotas: int, billable_metrics: bool
) -> list[str]:
    """Errors in the run's lines: their number (a base fee and one line per quota per
    subscription window; one per group with usage for the matrix quota), and every tokens
    line carrying the group of a metric_usage row of its window."""
    errors = []
    with engine.connect() as conn:
        windows = conn.execute(
            sa.text(
                "SELECT count(*) FROM subscriptions WHERE starts_on < :end"
                " AND (ends_on IS NULL OR ends_on > :start)"
            ),
            {"start": PERIOD.start, "end": PERIOD.end},
        ).scalar_one()
        expected = windows * (1 + event_quotas)
        if billable_metrics:
            groups = conn.execute(
                sa.text(
                    "SELECT count(*) FROM metric_usage u JOIN subscriptions s"
                    " ON s.tenant_id = u.tenant_id"
                    " AND u.window_start = GREATEST(s.starts_on, :start)"
                    " AND u.window_end = LEAST(COALESCE(s.ends_on, :end), :end)"
                    " WHERE u.metric_code = 'tokens' AND u.group_key <> ''"
                    " AND s.starts_on < :end AND (s.ends_on IS NULL OR s.ends_on > :start)"
                ),
                {"start": PERIOD.start, "end": PERIOD.end},
            ).scalar_one()
            expected += windows * (len(METRIC_QUOTAS) - 1) + groups
            grouped, matched, ungrouped = conn.execute(
                sa.text(
                    'SELECT count(*) FILTER (WHERE l."group" IS NOT NULL),'
                    " count(u.value) FILTER (WHERE u.value = l.quantity),"
                    ' count(*) FILTER (WHERE l."group" IS NULL)'
                    " FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id"
                    " LEFT JOIN metric_usage u ON u.metric_code = l.metric"
                    " AND u.tenant_id = i.tenant_id AND u.window_start = l.window_start"
                    ' AND u.window_end = l.window_end AND u.group_values = l."group"'
                    " WHERE l.metric = 'tokens'"
                )
            ).one()
            print(
                f"  tokens lines: {grouped:,} with a group ({groups:,} expected),"
                f" {matched:,} equal to their metric_usage group row, {ungrouped:,} without"
            )
            if not grouped == matched == groups or ungrouped:
                errors.append(
                    f"tokens lines: {grouped} grouped, {matched} matching metric_usage,"
                    f" {ungrouped} without a group; expected {groups} grouped and matching"
                )
    print(f"  line count check: {lines:,} lines, {expected:,} expected")
    if lines != expected:
        errors.append(f"{lines} invoice lines, expected {expected}")
    return errors


LINES_DIGEST = """
SELECT count(*) AS lines,
       md5(string_agg(md5(concat_ws('|', i.tenant_id, i.kind, i.currency, i.total, l.line_no,
           l.kind, l.subscription_id, l.plan_code, l.metric, l.description, l.window_start,
           l.window_end, l.quantity, l.included, l.billable_quantity, l.pricing_model,
           l.amount, l.breakdown::text, l."group"::text)), '' ORDER BY i.tenant_id, l.line_no))
FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
WHERE i.status <> 'void'
"""


def lines_digest(engine: sa.Engine) -> str:
    """md5 over every stored line (by tenant and line number) with its invoice's total:
    equal digests before and after a change mean the run stored the same content."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(LINES_DIGEST)).one()
    return f"{row.lines:,} lines, md5 {row.md5}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument(
        "--billable-metrics",
        action="store_true",
        help="also define the five billable metrics, quotas on them and their metric_usage",
    )
    parser.add_argument(
        "--groups", type=int, default=20, help="models (tokens groups) per window, 1-20"
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the embedded database folder")
    parser.add_argument(
        "--digest",
        action="store_true",
        help="print an md5 of every stored line after each run (to compare two commits)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="pricing worker processes (TALLYFLOW_INVOICE_WORKERS: 0 one per core, 1 none)",
    )
    parser.add_argument(
        "--profile", default=None, help="write a cProfile of the first run to this file"
    )
    args = parser.parse_args()
    if not 1 <= args.groups <= len(MODELS):
        parser.error(f"--groups must be between 1 and {len(MODELS)}")
    print(f"load average at start: {_load()}", flush=True)

    database = contextlib.ExitStack()
    url = to_sqlalchemy_url(
        args.database_url
        or database.enter_context(
            _harness.throwaway_postgres("tallyflow-invoice-bench-", keep=args.keep)
        )
    )
    try:
        engine = get_engine(Settings(database_url=url))
        migrate.upgrade(engine)
        seed(engine, args.tenants, billable_metrics=args.billable_metrics, groups=args.groups)
        metric_codes = (
            frozenset(m["code"] for m in FIVE_METRICS) if args.billable_metrics else frozenset()
        )

        sample = [f"t{i:06d}" for i in range(1, args.sample + 1)]
        orm_s = orm_loop(engine, sample, metric_codes)
        orm_totals = sample_totals(engine, sample)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM invoices"))
        orm_rate = len(orm_totals) / orm_s
        print(
            f"ORM per-tenant loop: {len(orm_totals):,} invoices in {orm_s:.1f} s"
            f" = {orm_rate:,.0f} invoices/s; extrapolated to {args.tenants:,} tenants:"
            f" {args.tenants / orm_rate:,.0f} s"
        )

        settings = Settings(database_url=url)
        if args.workers is not None:
            settings = settings.model_copy(update={"invoice_workers": args.workers})
        parallel = Parallelism.of(settings)
        runs = []
        for label in ("first run", "rerun (refresh)"):
            t0 = time.perf_counter()
            cpu0, children0 = time.process_time(), _children_cpu()
            with invoice_run_transaction(engine, [PERIOD]) as conn:
                backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                pg0, server0 = _cpu_seconds(backend), _server_cpu(backend)
                with _harness.profiled(args.profile if label == "first run" else None):
                    result = generate_invoices(conn, PERIOD, parallel=parallel)
                pg_cpu, server_cpu = _cpu_seconds(backend) - pg0, _server_cpu(backend) - server0
            seconds = time.perf_counter() - t0
            py_cpu = time.process_time() - cpu0
            workers_cpu = _children_cpu() - children0
            runs.append(seconds)
            print(
                f"set-based {label}: {result.generated:,} invoices in {seconds:.1f} s"
                f" = {result.generated / seconds:,.0f} invoices/s; phases {dict(result.timings)};"
                f" pricing workers {result.workers}; CPU: Python {py_cpu:.1f} s"
                f" (+ workers {workers_cpu:.1f} s), Postgres: run's backend {pg_cpu:.1f} s,"
                f" whole server {server_cpu:.1f} s; load average {os.getloadavg()[0]:.1f}"
            )
            if args.digest:
                print(f"  digest after the {label}: {lines_digest(engine)}", flush=True)
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
        line_errors = check_lines(engine, lines, len(EVENT_QUOTAS), args.billable_metrics)

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
        print(f"load average at end: {_load()}")
        if line_errors:
            raise SystemExit("; ".join(line_errors))
        if mismatches:
            raise SystemExit(
                f"sample totals differ for {len(mismatches)} tenants, e.g. {mismatches[:5]}"
            )
    finally:
        dispose_engines()
        database.close()


if __name__ == "__main__":
    main()
