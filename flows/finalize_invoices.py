"""Daily finalization: refresh, then close, the drafts of every period past its grace days."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, runtime

from tallyflow.core.resources import resources_from_env
from tasks.finalize_due_invoices import finalize_due_invoices
from tasks.publish_invoice_run_artifact import (
    publish_finalize_artifact,
    render_finalize_report,
)
from tasks.record_invoice_run import finish_invoice_run, start_invoice_run

JOB = "finalize_invoices"


@flow(name="finalize_invoices", log_prints=True)
def finalize_invoices(
    as_of: dt.date | None = None, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Close every draft (invoices and corrections) of the periods whose grace days are over.

    as_of: the day to finalize for (default: today, UTC); a period is due when
    period_end + TALLYFLOW_INVOICE_GRACE_DAYS <= as_of. now: the closing instant (default:
    the clock); its UTC year names the numbering year. Safe to rerun.
    """
    closing_at = now or dt.datetime.now(dt.UTC)
    day = as_of or closing_at.date()
    resources = resources_from_env()
    parameters = {"as_of": day.isoformat(), "grace_days": resources.settings.invoice_grace_days}
    run_id = start_invoice_run(resources, parameters, flow_run_id=_flow_run_id(), job=JOB)
    try:
        result = finalize_due_invoices(resources, day, closing_at, run_id)
        publish_finalize_artifact(render_finalize_report(result), day.isoformat())
    except Exception as exc:
        finish_invoice_run(resources, run_id, {"as_of": day.isoformat()}, error=repr(exc))
        raise
    summary: dict[str, Any] = {
        "as_of": day.isoformat(),
        "periods": [p.label for p in result.periods],
        "closed": result.closed,
        "unpriceable": result.unpriceable,
    }
    finish_invoice_run(resources, run_id, summary)
    print(f"finalize {day}: {result.closed} closed in {len(result.periods)} periods")
    return {**summary, "run_id": str(run_id), "invoice_ids": list(result.invoice_ids)}


def _flow_run_id() -> str | None:
    flow_run_id = runtime.flow_run.id
    return str(flow_run_id) if flow_run_id else None
