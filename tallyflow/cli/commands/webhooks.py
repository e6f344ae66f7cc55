"""`tallyflow webhooks deliver [--json]`: the deliver_webhooks flow, once."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    webhooks = typer.Typer(help="Webhooks: deliver due messages.", no_args_is_help=True)
    app.add_typer(webhooks, name="webhooks")

    @webhooks.command("deliver")
    def deliver(
        limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many")] = 500,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """Deliver the webhook messages that are due (what the deliver-webhooks deployment
        runs every minute); failures are rescheduled with backoff."""
        from tallyflow.cli.flow_runs import run_flow
        from tallyflow.cli.output import print_json

        def load() -> Any:
            from flows.deliver_webhooks import deliver_webhooks

            return deliver_webhooks

        result = run_flow(load, limit=limit)
        if as_json:
            print_json(result)
            return
        typer.echo(
            f"{result['attempted']} attempted: {result['delivered']} delivered,"
            f" {result['retrying']} to retry, {result['failed']} given up"
        )
