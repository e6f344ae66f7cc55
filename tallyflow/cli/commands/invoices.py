"""`tallyflow invoices ...`: the month-end run, previews, finalization and documents."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    invoices = typer.Typer(
        help="Invoices: the month-end run, previews, finalize, documents.", no_args_is_help=True
    )
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
        """Create or refresh the period's drafts, and corrections of closed invoices.

        Exits 1 (after printing the result) when some tenant could not be priced: the
        others are invoiced, the skipped ones are listed with their reason.
        """
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
            "correction_ids": outcome.get("correction_ids", []),
            "unpriceable": outcome.get("unpriceable", {}),
        }
        if as_json:
            print_json(payload)
        else:
            typer.echo(
                f"{billing_period}: {payload['generated']} invoices generated,"
                f" {payload['skipped']} skipped, {payload['closed']} closed,"
                f" {len(payload['correction_ids'])} corrections"
            )
            for currency, total in outcome.get("totals_by_currency", {}).items():
                typer.echo(f"  total {currency}: {total}")
            messages = outcome.get("skip_messages", {})
            for t, reason in sorted(outcome.get("skipped_tenants", {}).items()):
                typer.echo(f"  skipped {t}: {reason} {messages.get(t, '')}".rstrip())
        _exit_if_unpriceable(payload["unpriceable"])

    @invoices.command("preview")
    def preview(
        tenant: Annotated[str, typer.Option("--tenant", help="The tenant")],
        period: Annotated[
            str | None, typer.Option("--period", help="YYYY-MM (default: the current period)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """The tenant's invoice as the run would write it now; writes nothing."""
        from api.routes.invoices import InvoiceOut
        from models.period import BillingPeriod
        from services.invoicing import preview_invoice
        from tallyflow.cli.output import fail, print_json, usage_error
        from tallyflow.core.clock import utc_now
        from tallyflow.core.db import get_engine
        from tallyflow.core.errors import InvalidInput, NotFound, TallyflowError
        from tallyflow.core.settings import load_settings

        now = utc_now()
        try:
            billing_period = BillingPeriod.parse(period) if period else BillingPeriod.of(now.date())
            _check_tenant(tenant)
        except InvalidInput as exc:
            usage_error(exc.message)
        engine = get_engine(load_settings())
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(postgresql_readonly=True)
                view = preview_invoice(conn, tenant, billing_period, now=now)
                conn.rollback()
        except NotFound as exc:
            usage_error(exc.message)
        except TallyflowError as exc:
            fail(exc.message)
        out = InvoiceOut.of(view)
        if as_json:
            print_json(out.model_dump(mode="json"))
            return
        typer.echo(f"preview {tenant} {billing_period}: {out.total} {out.currency}")
        for li in out.lines or []:
            typer.echo(f"  {li.amount:>14} {li.description}")
        if out.correction is not None:
            typer.echo(
                f"  closed invoice {out.closed_invoice_id}: a run would write a"
                f" {out.correction.kind} of {out.correction.total} {out.currency}"
            )

    @invoices.command("finalize")
    def finalize(
        as_of: Annotated[
            str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: today, UTC)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """Refresh, then close, every draft of the periods past TALLYFLOW_INVOICE_GRACE_DAYS."""
        from tallyflow.cli.flow_runs import run_flow
        from tallyflow.cli.output import print_json, usage_error

        try:
            day = dt.date.fromisoformat(as_of) if as_of else None
        except ValueError:
            usage_error(f"--as-of {as_of!r} must be a date written YYYY-MM-DD")

        def load() -> Any:
            from flows.finalize_invoices import finalize_invoices

            return finalize_invoices

        outcome = run_flow(load, as_of=day)
        payload = {"closed": outcome["closed"], "invoice_ids": outcome["invoice_ids"]}
        if as_json:
            print_json(payload)
        else:
            typer.echo(
                f"finalize {outcome['as_of']}: {payload['closed']} closed"
                f" (periods: {', '.join(outcome['periods']) or 'none due'})"
            )
        _exit_if_unpriceable(outcome.get("unpriceable", {}))

    @invoices.command("document")
    def document(
        invoice_id: Annotated[int, typer.Argument(help="The invoice id", min=1)],
        fmt: Annotated[str, typer.Option("--format", help="pdf or html")] = "pdf",
        out: Annotated[Path | None, typer.Option("--out", help="File to write")] = None,
    ) -> None:
        """Write the invoice's document (a customer can receive it) to FILE."""
        from services.invoicing import document_view, get_invoice
        from services.invoicing.documents import check_locale, render
        from tallyflow.cli.output import usage_error
        from tallyflow.core.clock import utc_today
        from tallyflow.core.db import get_engine
        from tallyflow.core.errors import InvalidInput, NotFound
        from tallyflow.core.settings import load_settings

        if fmt not in ("pdf", "html"):
            usage_error(f"--format {fmt!r} must be pdf or html")
        if out is None:
            usage_error("--out FILE is required")
        settings = load_settings()
        try:
            check_locale(settings.invoice_locale)
        except InvalidInput as exc:
            usage_error(f"TALLYFLOW_INVOICE_LOCALE: {exc.message}")
        try:
            with get_engine(settings).connect() as conn:
                view, corrects = document_view(conn, get_invoice(conn, invoice_id), on=utc_today())
        except NotFound as exc:
            usage_error(exc.message)
        data = render(view, settings, fmt, corrects_number=corrects)
        try:
            out.write_bytes(data)
        except OSError as exc:
            usage_error(f"cannot write {out}: {exc.strerror}")
        typer.echo(f"wrote {out} ({len(data)} bytes)", err=True)


def _check_tenant(tenant: str) -> None:
    import re

    from models.identifiers import TENANT_ID_PATTERN as TENANT_ID_RE
    from tallyflow.core.errors import InvalidInput

    if not re.match(TENANT_ID_RE, tenant):
        raise InvalidInput(f"--tenant {tenant!r} is not a valid tenant id")


def _exit_if_unpriceable(unpriceable: dict[str, str]) -> None:
    if unpriceable:
        listed = ", ".join(f"{t} ({reason})" for t, reason in sorted(unpriceable.items()))
        typer.echo(f"error: could not price: {listed}", err=True)
        raise typer.Exit(1)
