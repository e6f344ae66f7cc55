"""`tallyflow demo`: a realistic month end to end on generated data.

Last month: a catalog of three plans, a few hundred tenants (one plan change on the 16th,
one cancellation on the 20th, a few tenants using the product without a subscription),
usage logs with bad rows, duplicates and late events, ingested night by night, then a
backfill, the month-end invoice run (closed), and quota checks on this month's usage.

Rerunnable: the catalog and subscriptions are created only when missing, the same seed
writes the same files (skipped by sha256 on the second run), closed invoices stay closed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from models.api import OverrideIn, PlanIn, QuotaIn, SubscriptionIn
from models.money import round_money
from models.period import BillingPeriod
from services import catalog, quota
from tallyflow.core.clock import utc_now, utc_today
from tallyflow.core.resources import Resources
from tallyflow.core.sqlfiles import sql
from tallyflow.synthetic.generate import UsageSpec, generate_usage, tenant_ids

# Issue 13: billable metrics over the generated properties: API calls priced by model
# (a matrix: one invoice line per model) and monthly active users (a distinct count).
DEMO_METRICS: list[dict[str, Any]] = [
    {
        "code": "api.calls.by_model",
        "name": "API calls by model",
        "event_metric": "api.calls",
        "aggregation": "count",
        "group_by": ["model"],
    },
    {
        "code": "active_users",
        "name": "Monthly active users",
        "event_metric": "api.calls",
        "aggregation": "unique_count",
        "value": "properties.user_id",
    },
]
DEMO_METRIC_QUOTAS = [
    QuotaIn(
        metric="api.calls.by_model",
        pricing={
            "model": "matrix",
            "prices": [
                {
                    "match": {"model": "model-01"},
                    "included": "100",
                    "pricing": {"model": "per_unit", "unit_price": "0.01"},
                },
                {
                    "match": {"model": "model-02"},
                    "pricing": {"model": "per_unit", "unit_price": "0.005"},
                },
            ],
            "default": {"included": "0", "pricing": {"model": "per_unit", "unit_price": "0.001"}},
        },
    ),
    QuotaIn(
        metric="active_users",
        included=Decimal(10),
        pricing={"model": "per_unit", "unit_price": "0.50"},
    ),
]

PLANS = [
    PlanIn(
        code="starter",
        name="Starter",
        currency="USD",
        base_fee=Decimal("29.00"),
        quotas=[
            QuotaIn(
                metric="api.calls",
                included=Decimal(1000),
                limit=Decimal(50000),
                pricing={"model": "per_unit", "unit_price": "0.002"},
            ),
            QuotaIn(
                metric="storage.gb_hours",
                included=Decimal(100),
                enforcement="soft",
                limit=Decimal(5000),
                pricing={"model": "per_unit", "unit_price": "0.0005"},
            ),
            QuotaIn(
                metric="seats",
                aggregation="max",
                included=Decimal(3),
                limit=Decimal(10),
                pricing={"model": "per_unit", "unit_price": "8.00"},
            ),
        ],
    ),
    PlanIn(
        code="growth",
        name="Growth",
        currency="USD",
        base_fee=Decimal("199.00"),
        quotas=[
            QuotaIn(
                metric="api.calls",
                included=Decimal(10000),
                pricing={
                    "model": "graduated",
                    "tiers": [
                        {"up_to": "100000", "unit_price": "0.0015", "flat_fee": "0"},
                        {"up_to": "1000000", "unit_price": "0.001", "flat_fee": "10"},
                        {"up_to": None, "unit_price": "0.0005"},
                    ],
                },
            ),
            QuotaIn(
                metric="compute.seconds",
                included=Decimal(3600),
                pricing={
                    "model": "package",
                    "package_size": "3600",
                    "package_price": "0.90",
                },
            ),
            QuotaIn(
                metric="egress.bytes",
                pricing={
                    "model": "package",
                    "package_size": "1000000000",
                    "package_price": "0.08",
                },
            ),
            QuotaIn(
                metric="seats",
                aggregation="max",
                included=Decimal(10),
                pricing={"model": "per_unit", "unit_price": "6.00"},
            ),
        ],
    ),
    PlanIn(
        code="scale-eu",
        name="Scale (EUR)",
        currency="EUR",
        base_fee=Decimal("990.00"),
        quotas=[
            QuotaIn(
                metric="api.calls",
                aggregation="count",
                pricing={
                    "model": "volume",
                    "tiers": [
                        {"up_to": "10000", "unit_price": "0.002", "flat_fee": "5"},
                        {"up_to": "100000", "unit_price": "0.0012", "flat_fee": "0"},
                        {"up_to": None, "unit_price": "0.0008", "flat_fee": "0"},
                    ],
                },
            ),
            QuotaIn(
                metric="compute.seconds", pricing={"model": "per_unit", "unit_price": "0.0002"}
            ),
            QuotaIn(
                metric="storage.gb_hours", pricing={"model": "per_unit", "unit_price": "0.0003"}
            ),
            QuotaIn(
                metric="egress.bytes",
                pricing={
                    "model": "per_unit",
                    "unit_price": "0.00000000007",
                },
            ),
        ],
    ),
]


@dataclass
class DemoReport:
    month: str
    tenants: int
    subscribed: int
    ingest_runs: int = 0
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    backfill: dict[str, Any] = field(default_factory=dict)
    invoices: dict[str, Any] = field(default_factory=dict)
    document: str | None = None  # one closed invoice's PDF
    top_tenants: list[tuple[str, str, Decimal]] = field(default_factory=list)
    checks: list[quota.QuotaDecision | Any] = field(default_factory=list)
    check_tenants: list[str] = field(default_factory=list)
    metric_lines: list[tuple[str, str, str, Decimal, Decimal]] = field(default_factory=list)


def create_catalog(res: Resources, month_start: dt.date, tenants: list[str]) -> int:
    """Plans, subscriptions (with a plan change and a cancellation), one override.

    The last 3 tenants get no subscription: their usage shows up in the invoice run's
    'usage without a subscription' report."""
    subscribed = tenants[:-3] if len(tenants) > 6 else tenants
    today = utc_today()
    with res.engine.begin() as conn:
        from services.metrics.catalog import create_metric, list_metrics

        known = {m.code for m in list_metrics(conn)}
        for definition in DEMO_METRICS:
            if definition["code"] not in known:
                create_metric(conn, definition)
        existing = {p.code for p in catalog.list_plans(conn)}
        for plan in PLANS:
            if plan.code not in existing:
                if plan.code == "growth":  # issue 13: the billable metrics' quotas
                    plan = plan.model_copy(update={"quotas": [*plan.quotas, *DEMO_METRIC_QUOTAS]})
                catalog.create_plan(conn, plan)
        for i, tenant in enumerate(subscribed):
            if catalog.list_subscriptions(conn, tenant):
                continue
            plan_code = ("growth", "starter", "starter", "scale-eu")[i % 4]
            catalog.create_subscription(
                conn,
                tenant,
                SubscriptionIn(plan_code=plan_code, starts_on=month_start),
                today=today,
            )
        # a plan change on the 16th and a cancellation on the 20th
        change, cancel = subscribed[1], subscribed[2]
        if len(catalog.list_subscriptions(conn, change)) == 1:
            catalog.create_subscription(
                conn,
                change,
                SubscriptionIn(plan_code="growth", starts_on=month_start.replace(day=16)),
                today=today,
                lake_root=res.settings.lake_location.url,
            )
        subs = catalog.list_subscriptions(conn, cancel)
        if len(subs) == 1 and subs[0].ends_on is None:
            catalog.end_subscription(
                conn,
                cancel,
                month_start.replace(day=20),
                today=today,
                lake_root=res.settings.lake_location.url,
            )
        # the biggest tenant negotiated more API calls, and soft enforcement
        catalog.replace_overrides(
            conn,
            subscribed[0],
            [
                OverrideIn(
                    metric="api.calls",
                    limit=Decimal(10_000_000),
                    included=Decimal(50_000),
                    enforcement="soft",
                )
            ],
            today=today,
        )
    return len(subscribed)


def run_demo(
    res: Resources,
    *,
    tenants: int = 300,
    events: int = 60_000,
    seed: int = 2026,
    today: dt.date | None = None,
    progress: Any = print,
) -> DemoReport:
    """The whole demo; `progress` receives one line per step."""
    from flows.backfill_usage import backfill_usage
    from flows.close_billing_period import close_billing_period
    from flows.ingest_usage import ingest_usage
    from tallyflow.core import migrate

    today = today or utc_today()
    month_start = BillingPeriod.previous(today).start
    month_end = today.replace(day=1)
    month = month_start.strftime("%Y-%m")
    ids = tenant_ids(tenants)

    progress("applying migrations")
    migrate.upgrade(res.engine)
    progress(f"catalog: {len(PLANS)} plans; subscribing {tenants} tenants for {month}")
    report = DemoReport(
        month=month, tenants=tenants, subscribed=create_catalog(res, month_start, ids)
    )

    landing = res.settings.landing_path / "demo" / month
    progress(f"generating {events} usage events for {month} in {landing}")
    now = utc_now()
    generate_usage(
        landing,
        UsageSpec(
            month=month,
            tenants=tenants,
            events=events,
            seed=seed,
            duplicates=0.01,
            conflicts=0.003,
            late=0.02,
            bad=0.01,
            now=now,
            billable_properties=True,
        ),
        format="jsonl",
    )
    this_month = res.settings.landing_path / "demo" / today.strftime("%Y-%m")
    if today.day > 1:
        generate_usage(
            this_month,
            UsageSpec(
                month=today.strftime("%Y-%m"),
                tenants=tenants,
                events=events // 3,
                seed=seed + 1,
                now=now,
                billable_properties=True,
            ),
            format="csv",
            gzip=True,
            files_by="rows",
            rows_per_file=max(events // 3, 1),
        )

    def ingest(paths: list[str]) -> None:
        result = ingest_usage(paths=paths)
        report.ingest_runs += 1
        report.rows += result["rows"]
        report.accepted += result["accepted"]
        report.duplicates += result["duplicates"]
        report.rejected.update(result["rejected_by_reason"])

    files = sorted(landing.glob("*"))
    progress(f"nightly ingests: {len(files)} runs, one per day's log (late events last)")
    for path in files:
        ingest([str(path)])
    if this_month.exists():
        progress("intraday ingest of this month's usage so far")
        ingest([str(this_month)])

    progress(f"backfill of {month} from the lake")
    report.backfill = backfill_usage(start=month_start, end=month_end - dt.timedelta(days=1))

    from flows.finalize_invoices import finalize_invoices
    from services.invoicing import get_invoice
    from services.invoicing.documents import render

    progress(f"month-end invoice run for {month} (drafts, as the month-end deployment)")
    report.invoices = close_billing_period(period=month, close=False)
    # NOTE: finalize as of the end of the grace days (or today, if later), as the daily
    # finalize-invoices deployment would: it refreshes the drafts, then closes them.
    grace_end = month_end + dt.timedelta(days=res.settings.invoice_grace_days)
    progress(f"finalize as of {max(today, grace_end)}: refresh and close the drafts")
    finalized = finalize_invoices(as_of=max(today, grace_end))
    report.invoices["closed"] = finalized["closed"]
    if finalized["invoice_ids"]:
        with res.engine.connect() as conn:
            first = get_invoice(conn, finalized["invoice_ids"][0])
        pdf = res.settings.home_path / f"{first.number}.pdf"
        pdf.write_bytes(render(first, res.settings, "pdf"))
        report.document = str(pdf)
    with res.engine.connect() as conn:
        rows = conn.execute(
            sql("invoicing/select_top_closed_invoices"), {"period_start": month_start, "limit": 5}
        ).all()
        report.top_tenants = [
            (r.tenant_id, r.currency, round_money(r.total, r.currency)) for r in rows
        ]
        # the first growth tenant's billable metric lines (a group, a distinct count)
        report.metric_lines = [
            (r.tenant_id, r.metric, r.grp or "", r.quantity, round_money(r.amount, r.currency))
            for r in conn.execute(
                sql("invoicing/select_metric_lines_of_first_tenant"),
                {
                    "period_start": month_start,
                    "metric_codes": ["active_users", "api.calls.by_model"],
                    "limit": 4,
                },
            ).all()
        ]
        report.check_tenants = [ids[0], ids[1], ids[4], ids[-1]]
        report.checks = [
            quota.check_quota(
                conn, tenant_id=t, metric="api.calls", requested=Decimal(100), today=today
            )
            for t in report.check_tenants
        ]
    return report


def format_report(report: DemoReport, settings_home: Path, prefect_url: str | None) -> str:
    lines = [
        "",
        f"tallyflow demo: {report.month}, {report.tenants} tenants "
        f"({report.subscribed} subscribed)",
        "",
        f"Usage: {report.ingest_runs} ingest runs read {report.rows} rows: "
        f"{report.accepted} accepted, {report.duplicates} duplicates, "
        f"{sum(report.rejected.values())} rejected",
    ]
    if report.rows == 0:
        lines.append("  (nothing new: every file was already ingested, by sha256)")
    for reason, count in sorted(report.rejected.items()):
        lines.append(f"  {reason:<24} {count}")
    lines += [
        "",
        f"Backfill: {report.backfill.get('days')} days recomputed, "
        f"{report.backfill.get('rows_written')} usage rows",
        "",
        f"Invoices: {report.invoices.get('generated')} generated, "
        f"{report.invoices.get('closed')} closed (by finalize), "
        f"{report.invoices.get('skipped')} skipped; one PDF: {report.document}",
    ]
    for currency, total in report.invoices.get("totals_by_currency", {}).items():
        lines.append(f"  total {currency}: {total}")
    if report.top_tenants:
        lines.append("  top tenants:")
        lines += [f"    {t:<20} {c} {amount}" for t, c, amount in report.top_tenants]
    if report.metric_lines:
        lines.append("  billable metrics (a matrix line per model, a distinct count):")
        lines += [
            f"    {t:<20} {m}{f' [{g}]' if g else ''}: {q.normalize():f} -> {a}"
            for t, m, g, q, a in report.metric_lines
        ]
    lines += ["", "Quota checks (api.calls, 100 more this month):"]
    for tenant, d in zip(report.check_tenants, report.checks, strict=True):
        limit = "unlimited" if d.limit is None else f"limit {d.limit.normalize():f}"
        used = "-" if d.used is None else f"{d.used.normalize():f}"
        lines.append(
            f"  {tenant:<20} allowed={str(d.allowed).lower():<5} {d.reason:<16} "
            f"used {used}, {limit}"
        )
    lines += [
        "",
        "Where to look next:",
        f"  Prefect UI (flow runs, artifacts): {prefect_url or 'tallyflow up'}".replace("/api", ""),
        "  The API: tallyflow serve, then http://127.0.0.1:8000/docs "
        "(key: tallyflow api-key create --name me --scope billing.read)",
        f"  The data: {settings_home} (lake/, landing/) and Postgres "
        "(tallyflow db url): usage_daily, invoices, rejected_rows, job_runs",
        "",
    ]
    return "\n".join(lines)
