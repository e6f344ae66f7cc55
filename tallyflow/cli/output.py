"""CLI output helpers: the --json shape and the exit codes (1 failed run, 2 bad usage)."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer


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
