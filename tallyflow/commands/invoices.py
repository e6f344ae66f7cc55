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
        from services.proration import BillingPeriod
        from tallyflow.cli import fail, print_json, usage_error
        from tallyflow.errors import InvalidInput

        try:
            billing_period = BillingPeriod.parse(period)
        except InvalidInput as exc:
            usage_error(exc.message)
        outcome = _run_flow(billing_period.label, tenant or None, close)
        if outcome is None:
            fail("the invoice run failed (see the Prefect flow run logs)")
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


def _run_flow(period: str, tenant_ids: list[str] | None, close: bool) -> dict[str, Any] | None:
    """Run the flow against the reused Prefect server; None when the run failed."""
    import logging

    from tallyflow.settings import load_settings

    try:
        from tallyflow.prefect_runtime import ensure_prefect_api
    except ImportError:  # pragma: no cover - the runtime helper ships with the CLI
        pass
    else:
        ensure_prefect_api(load_settings())

    from flows.close_billing_period import close_billing_period

    try:
        result: dict[str, Any] = close_billing_period(
            period=period, tenant_ids=tenant_ids, close=close
        )
    except Exception as exc:  # the flow already recorded the failure in job_runs
        logging.getLogger("tallyflow").debug("invoice run failed", exc_info=exc)
        typer.echo(f"error: {exc}", err=True)
        return None
    return result
