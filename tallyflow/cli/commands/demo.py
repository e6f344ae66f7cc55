"""`tallyflow demo`: a realistic month end to end on generated data."""

from __future__ import annotations

import time
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        tenants: Annotated[int, typer.Option(min=7, help="Tenants to simulate")] = 300,
        events: Annotated[int, typer.Option(min=1000, help="Usage events of last month")] = 60_000,
        seed: Annotated[int, typer.Option(help="Generator seed (same seed, same files)")] = 2026,
    ) -> None:
        """Catalog, subscriptions, last month's usage ingested night by night, a backfill,
        the month-end invoice run (closed) and quota checks, with a readable summary."""
        from tallyflow.core.resources import resources_from_env
        from tallyflow.core.settings import load_settings
        from tallyflow.runtime.prefect_server import ensure_prefect_api

        started = time.perf_counter()
        settings = load_settings()
        typer.echo(f"tallyflow home: {settings.home_path}", err=True)
        typer.echo("starting (or reusing) the Prefect server and Postgres ...", err=True)
        url = ensure_prefect_api(settings)

        from tallyflow.synthetic.demo import format_report, run_demo

        res = resources_from_env()
        report = run_demo(
            res,
            tenants=tenants,
            events=events,
            seed=seed,
            progress=lambda line: typer.echo(f"- {line}", err=True),
        )
        typer.echo(format_report(report, settings.home_path, url))
        typer.echo(f"demo finished in {time.perf_counter() - started:.0f} s")
