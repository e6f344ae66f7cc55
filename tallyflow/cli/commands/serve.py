"""`tallyflow serve`: the HTTP API under uvicorn (no Prefect import on this path)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option("--host", help="Interface to bind")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")] = 8000,
        log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level")] = "info",
        access_log: Annotated[bool, typer.Option("--access-log/--no-access-log")] = True,
    ) -> None:
        """Serve the billing API (OpenAPI at /openapi.json, Swagger UI at /docs).

        One process: a change made through it is visible to its very next quota check;
        other processes (CLI, flows) reach its quota snapshot through NOTIFY.
        """
        import uvicorn

        from api.app import create_app
        from tallyflow.core.settings import load_settings

        uvicorn.run(
            create_app(load_settings()),
            host=host,
            port=port,
            log_level=log_level,
            access_log=access_log,
        )
