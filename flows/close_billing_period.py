"""Month-end invoice run: price every subscription of a period into drafts, optionally close."""

from __future__ import annotations

import datetime as dt
from typing import Any

from models.period import BillingPeriod
from prefect import flow, runtime

from tallyflow.core.resources import resources_from_env
from tasks.collect_billing_exceptions import collect_billing_exceptions
from tasks.generate_period_invoices import generate_period_invoices
from tasks.publish_invoice_run_artifact import (
    publish_invoice_run_artifact,
    render_invoice_run_report,
    totals_json,
)
from tasks.record_invoice_run import finish_invoice_run, start_invoice_run


def resolve_period(period: str | None, today: dt.date | None = None) -> BillingPeriod:
    """'YYYY-MM', or by default the previous calendar month in UTC."""
    if period:
        return BillingPeriod.parse(period)
    return BillingPeriod.previous(today or dt.datetime.now(dt.UTC).date())


@flow(name="close_billing_period", log_prints=True)
def close_billing_period(
    period: str | None = None,
    tenant_ids: list[str] | None = None,
    close: bool = False,
) -> dict[str, Any]:
    """Generate (or refresh) the period's draft invoices; with `close`, close them too.

    period: YYYY-MM (default: the previous month, UTC). tenant_ids: only these tenants
    (default: every tenant with a subscription in the period). Safe to rerun and to run
    concurrently: closed and void invoices are never touched.
    """
    billing_period = resolve_period(period)
    tenants = sorted(set(tenant_ids)) if tenant_ids is not None else None
    resources = resources_from_env()
    parameters = {"period": billing_period.label, "tenant_ids": tenants, "close": close}
    run_id = start_invoice_run(resources, parameters, flow_run_id=_flow_run_id())
    try:
        result = generate_period_invoices(resources, billing_period, tenants, close, run_id)
        exceptions = collect_billing_exceptions(resources, billing_period, tenants)
        publish_invoice_run_artifact(
            render_invoice_run_report(result, exceptions.unsubscribed, exceptions.late),
            billing_period.label,
        )
    except Exception as exc:
        finish_invoice_run(resources, run_id, {"period": billing_period.label}, error=repr(exc))
        raise
    summary: dict[str, Any] = {
        "period": billing_period.label,
        "generated": result.generated,
        "updated": result.updated,
        "skipped": result.skipped,
        "closed": result.closed,
        "removed": result.removed,
        "totals_by_currency": totals_json(result.totals_by_currency()),
        "skipped_tenants": dict(result.skipped_tenants),
        "unsubscribed_tenants": len(exceptions.unsubscribed),
        "late_usage_rows": len(exceptions.late),
        "timings_s": dict(result.timings),
    }
    finish_invoice_run(resources, run_id, summary)
    print(
        f"invoice run {billing_period}: {result.generated} generated, {result.skipped} skipped,"
        f" {result.closed} closed"
    )
    return {**summary, "run_id": str(run_id), "invoice_ids": result.invoice_ids}


def _flow_run_id() -> str | None:
    flow_run_id = runtime.flow_run.id
    return str(flow_run_id) if flow_run_id else None
