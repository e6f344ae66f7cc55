"""`tallyflow db upgrade|downgrade|current`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer


@contextmanager
def _exit_codes() -> Iterator[None]:
    """An unknown revision or a missing/wrong secret key is bad usage (2); a database that
    fails is a failed run (1)."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from tallyflow.cli.output import fail, usage_error
    from tallyflow.core.secrets import SecretKeyError

    try:
        yield
    except CommandError as exc:
        usage_error(str(exc))
    except SecretKeyError as exc:  # 0009 seals webhook secrets with TALLYFLOW_SECRET_KEY
        usage_error(exc.message)
    except SQLAlchemyError as exc:
        fail(f"the database refused: {type(exc).__name__}: {exc}")


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
    app.add_typer(db, name="db")

    @db.command("upgrade")
    def upgrade(revision: str = typer.Argument("head", help="Target revision")) -> None:
        """Apply the migrations up to REVISION (default: head)."""
        from tallyflow.core import migrate
        from tallyflow.core.db import get_engine
        from tallyflow.core.settings import load_settings

        engine = get_engine(load_settings())
        with _exit_codes():
            migrate.upgrade(engine, revision)
            typer.echo(f"database at revision {migrate.current_revision(engine)}", err=True)

    @db.command("downgrade")
    def downgrade(
        revision: str = typer.Argument(..., help="Target revision, e.g. base"),
        force: bool = typer.Option(False, "--force", help="Needed: a downgrade drops data"),
    ) -> None:
        """Revert the migrations down to REVISION (needs --force; refused once invoices exist)."""
        from tallyflow.cli.output import fail, usage_error
        from tallyflow.core import migrate
        from tallyflow.core.db import get_engine
        from tallyflow.core.settings import load_settings

        if not force:
            usage_error("a downgrade drops tables and data: add --force if that is meant")
        engine = get_engine(load_settings())
        invoices = migrate.invoice_count(engine)
        if invoices:
            fail(
                f"refusing to downgrade: the database holds {invoices} invoices (issued "
                "bills are records to keep; restore a backup instead)"
            )
        with _exit_codes():
            migrate.downgrade(engine, revision)
            typer.echo(f"database at revision {migrate.current_revision(engine)}", err=True)

    @db.command("url")
    def url() -> None:
        """Print the database URL in use (starts the embedded Postgres when needed)."""
        from tallyflow.core.db import database_url, to_libpq_url
        from tallyflow.core.settings import load_settings

        typer.echo(to_libpq_url(database_url(load_settings())))
