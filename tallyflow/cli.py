"""The `tallyflow` command line.

NOTE: keep module-level imports light. Commands that run no flow (serve, api-key,
db upgrade) must not import Prefect (2+ s); each command imports what it needs inside.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from tallyflow.commands import register_all

app = typer.Typer(
    name="tallyflow",
    help="Usage metering, quotas and month-end billing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def print_json(payload: Any) -> None:
    """One JSON object on stdout (the contract's --json shape)."""
    sys.stdout.write(json.dumps(payload, default=str, sort_keys=False) + "\n")


def usage_error(message: str) -> NoReturn:
    """Bad usage: message on stderr, exit code 2."""
    raise typer.BadParameter(message)


def fail(message: str) -> NoReturn:
    """A failed run: message on stderr, exit code 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


register_all(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
