"""Running a flow from the CLI: reuse a Prefect server, map failures to exit codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def run_flow(load: Callable[[], Callable[..., Any]], **parameters: Any) -> Any:
    """Point Prefect at a long-lived server (before importing it), then run the flow.

    `load` imports and returns the flow, so Prefect is imported only here. Commands check
    their arguments before (exit 2); any failure of the run itself exits 1, domain errors
    included (a stored plan that no longer prices is a failed run, not bad usage).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from tallyflow.cli.output import usage_error
    from tallyflow.core import migrate
    from tallyflow.core.db import get_engine
    from tallyflow.core.errors import SchemaOutdated
    from tallyflow.core.settings import load_settings
    from tallyflow.core.storage import StorageConfigError
    from tallyflow.runtime.prefect_server import PrefectServerError, ensure_prefect_api

    settings = load_settings()
    try:
        settings.check_storage()
    except StorageConfigError as exc:  # NOTE: configuration, not a failed run: exit 2
        usage_error(exc.message)
    try:
        migrate.require_current(get_engine(settings))
        ensure_prefect_api(settings)
    except SQLAlchemyError as exc:
        typer.echo(f"error: cannot use the database: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (PrefectServerError, SchemaOutdated) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    flow = load()
    try:
        return flow(**parameters)
    except Exception as exc:
        # NOTE: imported only on failure (cryptography: a run that seals nothing never
        # loads it; one that raised SecretKeyError has it loaded already).
        from tallyflow.core.secrets import SecretKeyError

        if isinstance(exc, SecretKeyError):  # NOTE: configuration (TALLYFLOW_SECRET_KEY): exit 2
            usage_error(exc.message)
        typer.echo(f"error: the run failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc
