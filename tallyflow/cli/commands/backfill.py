"""`tallyflow backfill --start D --end D [--tenant T...] [--metric CODE...] [--json]`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def register(app: typer.Typer) -> None:
    @app.command("backfill")
    def backfill(
        start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD")],
        end: Annotated[str, typer.Option("--end", help="Last day (inclusive), YYYY-MM-DD")],
        tenant: Annotated[
            list[str] | None, typer.Option("--tenant", help="Only this tenant (repeatable)")
        ] = None,
        regenerate_invoices: Annotated[
            bool,
            typer.Option("--regenerate-invoices", help="Refresh the touched months' drafts"),
        ] = False,
        metric: Annotated[
            list[str] | None,
            typer.Option("--metric", help="Only this billable metric (repeatable)"),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """Recompute usage_daily for days START..END from the lake (days without events end
        with no rows), then refresh quotas."""
        from tallyflow.cli.flow_runs import run_flow
        from tallyflow.cli.output import print_json, usage_error

        first, last = _date(start), _date(end)
        if last < first:
            usage_error(f"--end {last} is before --start {first}")

        def load() -> Any:
            from flows.backfill_usage import backfill_usage

            return backfill_usage

        result = run_flow(
            load,
            start=first,
            end=last,
            tenant_ids=tenant or None,
            regenerate_invoices=regenerate_invoices,
            metrics=metric or None,
        )
        if as_json:
            print_json(result)
            return
        typer.echo(f"{result['days']} days recomputed, {result['rows_written']} usage rows")
