"""The `tallyflow` command line.

NOTE: keep module-level imports light. Commands that run no flow (serve, api-key,
db upgrade) must not import Prefect (2+ s); each command imports what it needs inside.
"""

from __future__ import annotations

import typer

from tallyflow.cli.commands import register_all

app = typer.Typer(
    name="tallyflow",
    help="Usage metering, quotas and month-end billing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


register_all(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
