"""`tallyflow metrics list|show CODE [--json]`: the billable metrics (contract section 4a).

Defining one is an API call (POST /api/billing/metrics, audited); the CLI reads them.
"""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    metrics = typer.Typer(help="Billable metrics: list and show.", no_args_is_help=True)
    app.add_typer(metrics, name="metrics")

    @metrics.command("list")
    def list_(
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """Every billable metric, by code."""
        from services.metrics.catalog import list_metrics
        from tallyflow.cli.output import print_json
        from tallyflow.core.resources import resources_from_env

        res = resources_from_env()
        with res.engine.connect() as conn:
            found = list_metrics(conn)
        if as_json:
            print_json({"metrics": [m.to_json() for m in found]})
            return
        if not found:
            typer.echo("no billable metrics defined")
        for m in found:
            typer.echo(_line(m.to_json()))

    @metrics.command("show")
    def show(
        code: Annotated[str, typer.Argument(help="The metric code")],
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """One billable metric's definition (exit 1 when it does not exist)."""
        from services.metrics.catalog import get_metric
        from tallyflow.cli.output import fail, print_json
        from tallyflow.core.errors import NotFound
        from tallyflow.core.resources import resources_from_env

        res = resources_from_env()
        try:
            with res.engine.connect() as conn:
                metric = get_metric(conn, code)
        except NotFound as exc:
            fail(exc.message)
        if as_json:
            print_json(metric.to_json())
            return
        for key, value in metric.to_json().items():
            typer.echo(f"{key:>13}: {value}")


def _line(m: dict[str, object]) -> str:
    extra = []
    if m["percentile"]:
        extra.append(f"p{m['percentile']}")
    if m["time_unit"]:
        extra.append(f"per {m['time_unit']}")
    if m["filters"]:
        extra.append(f"filters {m['filters']}")
    if m["group_by"]:
        extra.append(f"by {', '.join(m['group_by'])}")  # type: ignore[arg-type]
    detail = f" ({'; '.join(extra)})" if extra else ""
    return f"{m['code']}: {m['aggregation']} of {m['value']} of events {m['event_metric']}{detail}"
