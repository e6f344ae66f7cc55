"""`tallyflow invoices generate`: the month-end invoice run (the close_billing_period flow)."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    invoices = typer.Typer(help="Invoices: the month-end run.", no_args_is_help=True)
    app.add_typer(invoices, name="invoices")

    @invoices.command("generate")
    def generate(
        period: Annotated[str, typer.Option("--period", help="Billing period, YYYY-MM")],
        tenant: Annotated[
            list[str] | None,
            typer.Option("--tenant", help="Only this tenant (repeatable); default: all"),
        ] = None,
        close: Annotated[
            bool, typer.Option("--close", help="Close the drafts (numbers them, freezes them)")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """Create or refresh the period's draft invoices (closed/void ones are left alone)."""
        from models.period import BillingPeriod

        from tallyflow.cli.flow_runs import run_flow
        from tallyflow.cli.output import print_json, usage_error
        from tallyflow.core.errors import InvalidInput

        try:
            billing_period = BillingPeriod.parse(period)
        except InvalidInput as exc:
            usage_error(exc.message)

        def load() -> Any:
            from flows.close_billing_period import close_billing_period

            return close_billing_period

        outcome = run_flow(
            load, period=billing_period.label, tenant_ids=tenant or None, close=close
        )
        payload = {
            "generated": outcome["generated"],
            "skipped": outcome["skipped"],
            "closed": outcome["closed"],
            "invoice_ids": outcome["invoice_ids"],
        }
        if as_json:
            print_json(payload)
            return
        typer.echo(
            f"{billing_period}: {payload['generated']} invoices generated,"
            f" {payload['skipped']} skipped, {payload['closed']} closed"
        )
        for currency, total in outcome.get("totals_by_currency", {}).items():
            typer.echo(f"  total {currency}: {total}")
        for t, reason in sorted(outcome.get("skipped_tenants", {}).items()):
            typer.echo(f"  skipped {t}: {reason}")
