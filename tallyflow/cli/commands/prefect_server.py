"""`tallyflow prefect-server status|start|stop`: the background Prefect server of flow commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="The Prefect server kept in the background for flow commands.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="prefect-server")

    @group.command("status")
    def status() -> None:
        """Print whether it runs, its URL, pid and log file (one JSON object)."""
        import json

        from tallyflow.core.settings import load_settings
        from tallyflow.runtime.prefect_server import server_status

        typer.echo(json.dumps(server_status(load_settings())))

    @group.command("start")
    def start() -> None:
        """Start it now (flow commands otherwise start it on first use)."""
        from tallyflow.core.settings import load_settings
        from tallyflow.runtime.prefect_server import PrefectServerError, ensure_background_server

        try:
            info = ensure_background_server(load_settings())
        except PrefectServerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"Prefect server running: {info.url.removesuffix('/api')} (pid {info.pid})")

    @group.command("stop")
    def stop() -> None:
        """Stop it (the next flow command starts it again)."""
        from tallyflow.core.settings import load_settings
        from tallyflow.runtime.prefect_server import stop_prefect_server

        stopped = stop_prefect_server(load_settings())
        typer.echo("stopped" if stopped else "not running", err=True)
