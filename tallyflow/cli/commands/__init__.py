"""CLI command groups, one module each; every module exposes `register(app)`."""

from __future__ import annotations

import importlib

import typer

# NOTE: order is the order of `tallyflow --help`.
COMMAND_MODULES = [
    "db",
    "ingest",
    "backfill",
    "metrics",
    "generate",
    "invoices",
    "webhooks",
    "api_key",
    "serve",
    "up",
    "prefect_server",
    "demo",
]


def register_all(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"tallyflow.cli.commands.{name}")
        module.register(app)
