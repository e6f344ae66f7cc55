"""Month-end invoice run: price every subscription of a period into drafts, optionally close."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.invoice_reports import render_invoice_run_report, totals_json
from flows.runs import flow_job_run
from models.period import BillingPeriod
from tallyflow.core.clock import utc_today
from tallyflow.core.resources import resources_from_env
from tasks.collect_billing_exceptions import collect_billing_exceptions
from tasks.generate_period_invoices import generate_period_invoices


def resolve_period(period: str | None, today: dt.date | None = None) -> BillingPeriod:
    """'YYYY-MM', or by default the previous calendar month in UTC."""
    if period:
        return BillingPeriod.parse(period)
    return BillingPeriod.previous(today or utc_today())


@flow(name="close_billing_period", log_prints=True)
def close_billing_period(
    period: str | None = None,
    tenant_ids: list[str] | None = None,
    close: bool = False,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Generate (or refresh) the period's draft invoices; with `close`, close them too.

    period: YYYY-MM (default: the previous month, UTC). tenant_ids: only these tenants
    (default: every tenant with a subscription in the period). Safe to rerun and to run
    concurrently: closed and void invoices are never touched (a closed one may get a draft
    correction). now: the closing instant with `close` (default: the clock).
    """
    billing_period = resolve_period(period)
    tenants = sorted(set(tenant_ids)) if tenant_ids is not None else None
    resources = resources_from_env()
    parameters = {"period": billing_period.label, "tenant_ids": tenants, "close": close}
    with flow_job_run(resources, "close_billing_period", parameters) as run:
        result = generate_period_invoices(resources, billing_period, tenants, close, run.id, now)
        exceptions = collect_billing_exceptions(resources, billing_period, tenants)
        summary: dict[str, Any] = {
            "period": billing_period.label,
            "generated": result.generated,
            "updated": result.updated,
            "skipped": result.skipped,
            "closed": result.closed,
            "removed": result.removed,
            "totals_by_currency": totals_json(result.totals_by_currency()),
            "skipped_tenants": dict(result.skipped_tenants),
            "skip_messages": dict(result.skip_messages),
            "unpriceable": result.unpriceable,
            "corrections": [
                {
                    "invoice_id": c.invoice_id,
                    "corrects_invoice_id": c.corrects_invoice_id,
                    "tenant_id": c.tenant_id,
                    "kind": c.kind,
                    "total": str(c.total),
                    "currency": c.currency,
                }
                for c in result.corrections
            ],
            "unsubscribed_tenants": len(exceptions.unsubscribed),
            "late_usage_rows": len(exceptions.late),
            "timings_s": dict(result.timings),
            "pricing_workers": result.workers,
        }
        run.succeed(summary)
    create_markdown_artifact(
        key=f"invoice-run-{billing_period.label}",
        markdown=render_invoice_run_report(result, exceptions.unsubscribed, exceptions.late),
        description=f"Invoice run for {billing_period.label}",
    )
    print(
        f"invoice run {billing_period}: {result.generated} generated, {result.skipped} skipped,"
        f" {result.closed} closed"
    )
    return {
        **summary,
        "run_id": str(run.id),
        "invoice_ids": result.invoice_ids,
        "correction_ids": result.correction_ids,
    }
