"""Daily finalization: refresh, then close, the drafts of every period past its grace days."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.invoice_reports import render_finalize_report
from flows.runs import flow_job_run
from tallyflow.core.clock import utc_now
from tallyflow.core.resources import resources_from_env
from tasks.finalize_due_invoices import finalize_due_invoices


@flow(name="finalize_invoices", log_prints=True)
def finalize_invoices(
    as_of: dt.date | None = None, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Close every draft (invoices and corrections) of the periods whose grace days are over.

    as_of: the day to finalize for (default: today, UTC); a period is due when
    period_end + TALLYFLOW_INVOICE_GRACE_DAYS <= as_of. now: the closing instant (default:
    the clock); its UTC year names the numbering year. Safe to rerun.
    """
    closing_at = now or utc_now()
    day = as_of or closing_at.date()
    resources = resources_from_env()
    parameters = {"as_of": day.isoformat(), "grace_days": resources.settings.invoice_grace_days}
    with flow_job_run(resources, "finalize_invoices", parameters) as run:
        result = finalize_due_invoices(resources, day, closing_at, run.id)
        summary: dict[str, Any] = {
            "as_of": day.isoformat(),
            "periods": [p.label for p in result.periods],
            "closed": result.closed,
            "unpriceable": result.unpriceable,
        }
        run.succeed(summary)
    create_markdown_artifact(
        key=f"finalize-{day.isoformat()}",
        markdown=render_finalize_report(result),
        description=f"Finalize as of {day.isoformat()}",
    )
    print(f"finalize {day}: {result.closed} closed in {len(result.periods)} periods")
    return {**summary, "run_id": str(run.id), "invoice_ids": list(result.invoice_ids)}
