"""Flow `backfill_usage`: recompute usage_daily for a range of days from the lake."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from services.ingest.backfill import (
    DayChange,
    backfill_markdown,
    committed_day_files,
    replace_day,
)
from services.job_runs import fail_job_run, finish_job_run, start_job_run, usage_write_lock
from services.quota import refresh_quota_usage
from tallyflow.core.clock import utc_now
from tallyflow.core.errors import InvalidInput
from tallyflow.core.faults import crash_point
from tallyflow.core.resources import Resources, resources_from_env
from tallyflow.runtime.dask import dask_task_runner
from tasks.backfill import compute_usage_day

MAX_BACKFILL_DAYS = 3660


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """start..end inclusive; InvalidInput when reversed or absurdly long."""
    if end < start:
        raise InvalidInput(f"end {end} is before start {start}", code="invalid_range")
    count = (end - start).days + 1
    if count > MAX_BACKFILL_DAYS:
        raise InvalidInput(f"{count} days is more than {MAX_BACKFILL_DAYS}", code="invalid_range")
    return [start + dt.timedelta(days=i) for i in range(count)]


def run_backfill(
    res: Resources,
    start: dt.date,
    end: dt.date,
    tenant_ids: list[str] | None = None,
    regenerate_invoices: bool = False,
) -> tuple[list[DayChange], dict[str, Any]]:
    logger = get_run_logger()
    days = days_between(start, end)
    with usage_write_lock(res.engine):
        run_id = start_job_run(
            res.engine,
            "backfill_usage",
            {
                "start": start,
                "end": end,
                "tenant_ids": tenant_ids,
                "regenerate_invoices": regenerate_invoices,
            },
            flow_run_id=str(flow_run.get_id()) if flow_run.get_id() else None,
        )
        try:
            with res.engine.connect() as conn:
                files = committed_day_files(conn, res.settings.lake_location.url, days)
            # NOTE: the days are computed (in process, or as tasks on the Dask cluster),
            # then all of them replaced in the one transaction below: the lock keeps the
            # manifest as read here until the run ends.
            with dask_task_runner(res.settings.dask_address) as runner:
                if runner is None:
                    dailies = [compute_usage_day(files[d], d, tenant_ids) for d in days]
                else:
                    futures = [
                        runner.submit(
                            compute_usage_day,
                            {"files": files[d], "day": d, "tenant_ids": tenant_ids},
                        )
                        for d in days
                    ]
                    dailies = [f.result() for f in futures]
            crash_point("backfill.days_computed")
            now = utc_now()
            regenerated: dict[str, int] = {}
            with res.engine.begin() as conn:
                changes = [
                    replace_day(conn, day, daily, tenant_ids)
                    for day, daily in zip(days, dailies, strict=True)
                ]
                refresh_quota_usage(conn, today=now.date(), as_of=now)
                if regenerate_invoices:
                    regenerated = regenerate_drafts(conn, days, tenant_ids)
                summary = {
                    "days": len(days),
                    "rows_written": sum(c.rows_after for c in changes),
                    "invoices_regenerated": regenerated,
                }
                finish_job_run(conn, run_id, summary)
                crash_point("backfill.before_commit")
        except BaseException as exc:
            fail_job_run(res.engine, run_id, exc)
            raise
    logger.info("backfilled %d days: %d rows", summary["days"], summary["rows_written"])
    return changes, summary


def regenerate_drafts(
    conn: Any, days: list[dt.date], tenant_ids: list[str] | None
) -> dict[str, int]:
    """Refresh draft invoices of every period the days touch (closed ones stay as they are)."""
    from services.invoicing import generate_invoices
    from services.proration import BillingPeriod

    periods = sorted({BillingPeriod.of(d) for d in days}, key=lambda p: p.start)
    out = {}
    for period in periods:
        result = generate_invoices(conn, period, tenant_ids=tenant_ids)
        out[period.start.strftime("%Y-%m")] = result.generated
    return out


@flow(name="backfill_usage", log_prints=True)
def backfill_usage(
    start: dt.date,
    end: dt.date,
    tenant_ids: list[str] | None = None,
    regenerate_invoices: bool = False,
) -> dict[str, Any]:
    """Recompute usage_daily for days start..end (inclusive) from the lake, one task per day
    (on the Dask cluster at TALLYFLOW_DASK_ADDRESS when set); then replace every day, refresh
    quota_usage and optionally regenerate the touched months' drafts in one transaction."""
    res = resources_from_env()
    changes, summary = run_backfill(res, start, end, tenant_ids, regenerate_invoices)
    create_markdown_artifact(
        key="usage-backfill-summary",
        markdown=backfill_markdown(changes, tenant_ids),
        description=f"{summary['days']} days, {summary['rows_written']} rows",
    )
    return {"days": summary["days"], "rows_written": summary["rows_written"]}
