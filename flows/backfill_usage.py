"""Flow `backfill_usage`: recompute usage_daily for a range of days from the lake."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.runs import flow_job_run
from models.period import BillingPeriod
from services import lake_guard
from services.alerts import evaluate_alerts
from services.ingest.backfill import (
    DayChange,
    backfill_markdown,
    committed_day_files,
    replace_day,
)
from services.job_runs import USAGE_LOCK_KEY, usage_write_lock
from services.metrics.store import refresh_metric_usage
from services.quota import refresh_quota_usage
from tallyflow.core.clock import utc_now
from tallyflow.core.errors import InvalidInput
from tallyflow.core.faults import crash_point
from tallyflow.core.resources import Resources, resources_from_env
from tallyflow.runtime.dask import cluster_threads, dask_task_runner
from tasks.backfill import compute_usage_day, compute_usage_days

MAX_BACKFILL_DAYS = 3660


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """start..end inclusive; InvalidInput when reversed or absurdly long."""
    if end < start:
        raise InvalidInput(f"end {end} is before start {start}", code="invalid_range")
    count = (end - start).days + 1
    if count > MAX_BACKFILL_DAYS:
        raise InvalidInput(f"{count} days is more than {MAX_BACKFILL_DAYS}", code="invalid_range")
    return [start + dt.timedelta(days=i) for i in range(count)]


def day_chunks(days: list[dt.date], parts: int) -> list[list[dt.date]]:
    """`days` cut into at most `parts` runs of consecutive days, in order, sizes within one."""
    parts = max(1, min(parts, len(days)))
    size, extra = divmod(len(days), parts)
    chunks, at = [], 0
    for i in range(parts):
        n = size + (1 if i < extra else 0)
        chunks.append(days[at : at + n])
        at += n
    return [c for c in chunks if c]


def run_backfill(
    res: Resources,
    start: dt.date,
    end: dt.date,
    tenant_ids: list[str] | None = None,
    regenerate_invoices: bool = False,
    metrics: list[str] | None = None,
) -> tuple[list[DayChange], dict[str, Any]]:
    logger = get_run_logger()
    days = days_between(start, end)
    if metrics is not None:
        metrics = check_metric_codes(res, metrics)
    lake_url = res.settings.lake_location.url
    parameters = {
        "start": start,
        "end": end,
        "tenant_ids": tenant_ids,
        "regenerate_invoices": regenerate_invoices,
        "metrics": metrics,
    }
    with (
        usage_write_lock(res.engine) as lock_pid,
        flow_job_run(res, "backfill_usage", parameters) as run,
    ):
        with res.engine.connect() as conn:
            lake_guard.ensure_lake_owner(conn, lake_url)
            files = committed_day_files(conn, lake_url, days) if not metrics else {}
        # NOTE: `metrics` restricts the backfill to those billable metrics (usage_daily
        # is left as it is). Otherwise the days are computed (in process, or as tasks on
        # the Dask cluster), then all of them replaced in the one transaction below: the
        # lock keeps the manifest as read here until the run ends.
        dailies = []
        if not metrics:
            with dask_task_runner(res.settings.dask_address) as runner:
                if runner is None:
                    dailies = [compute_usage_day(files[d], d, tenant_ids) for d in days]
                else:
                    # NOTE: one task per worker thread over consecutive days, not one per
                    # day: Prefect's per-task cost is several times a day's work (bench/
                    # README.md, "Scaling out"), so per-day tasks made 2 workers slower
                    # than one process.
                    futures = [
                        runner.submit(
                            compute_usage_days,
                            {
                                "day_files": [(d, files[d]) for d in chunk],
                                "tenant_ids": tenant_ids,
                                "first_day": chunk[0],
                                "last_day": chunk[-1],
                            },
                        )
                        for chunk in day_chunks(days, cluster_threads(runner))
                    ]
                    dailies = [daily for f in futures for daily in f.result()]
        crash_point("backfill.days_computed")
        now = utc_now()
        regenerated: dict[str, int] = {}
        with res.engine.begin() as conn:
            lake_guard.fence_run(conn, lock_key=USAGE_LOCK_KEY, lock_pid=lock_pid, run_id=run.id)
            changes = [
                replace_day(conn, day, daily, tenant_ids)
                for day, daily in zip(days, dailies, strict=False)
            ]
            refreshed = refresh_metric_usage(
                conn,
                lake_url,
                days,
                now,
                tenant_ids=tenant_ids,
                metric_codes=metrics,
            )
            refresh_quota_usage(conn, today=now.date(), as_of=now)
            evaluate_alerts(conn, tenant_ids=None, period=BillingPeriod.of(now.date()), now=now)
            if regenerate_invoices:
                regenerated = regenerate_drafts(conn, days, tenant_ids)
            summary = {
                "days": len(days),
                "rows_written": sum(c.rows_after for c in changes),
                "invoices_regenerated": regenerated,
            }
            if refreshed.unreadable:
                summary |= refreshed.to_json()
            run.succeed_in(conn, summary)
            crash_point("backfill.before_commit")
    logger.info("backfilled %d days: %d rows", summary["days"], summary["rows_written"])
    return changes, summary


def check_metric_codes(res: Resources, codes: list[str]) -> list[str]:
    """The given billable metric codes, each known; InvalidInput naming an unknown one."""
    from services.metrics.catalog import list_metrics

    with res.engine.connect() as conn:
        known = {m.code for m in list_metrics(conn, codes=codes)}
    unknown = sorted(set(codes) - known)
    if unknown:
        raise InvalidInput(f"metric {unknown[0]!r} does not exist", code="metric_not_found")
    return sorted(set(codes))


def regenerate_drafts(
    conn: Any, days: list[dt.date], tenant_ids: list[str] | None
) -> dict[str, int]:
    """Refresh draft invoices of every period the days touch (closed ones stay as they are)."""
    from models.period import BillingPeriod
    from services.invoicing import generate_invoices

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
    metrics: list[str] | None = None,
) -> dict[str, Any]:
    """Recompute usage_daily for days start..end (inclusive) from the lake, one task per day
    (on the Dask cluster at TALLYFLOW_DASK_ADDRESS when set), and the billable metrics of the
    touched months (`metrics`: only those, usage_daily left alone); then replace every day,
    refresh quota_usage and optionally regenerate the touched months' drafts in one
    transaction."""
    res = resources_from_env()
    changes, summary = run_backfill(res, start, end, tenant_ids, regenerate_invoices, metrics)
    create_markdown_artifact(
        key="usage-backfill-summary",
        markdown=backfill_markdown(changes, tenant_ids),
        description=f"{summary['days']} days, {summary['rows_written']} rows",
    )
    out = {"days": summary["days"], "rows_written": summary["rows_written"]}
    if "metric_unreadable" in summary:  # NOTE (issue 13): only when metrics are defined
        out |= {k: summary[k] for k in ("metric_rows_written", "metric_unreadable")}
    return out
