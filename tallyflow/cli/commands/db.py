"""`tallyflow db upgrade|downgrade|current`."""

from __future__ import annotations

import typer


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
        migrate.upgrade(engine, revision)
        typer.echo(f"database at revision {migrate.current_revision(engine)}", err=True)

    @db.command("downgrade")
    def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base")) -> None:
        """Revert the migrations down to REVISION."""
        from tallyflow.core import migrate
        from tallyflow.core.db import get_engine
        from tallyflow.core.settings import load_settings

        engine = get_engine(load_settings())
        migrate.downgrade(engine, revision)
        typer.echo(f"database at revision {migrate.current_revision(engine)}", err=True)

    @db.command("url")
    def url() -> None:
        """Print the database URL in use (starts the embedded Postgres when needed)."""
        from tallyflow.core.db import database_url, to_libpq_url
        from tallyflow.core.settings import load_settings

        typer.echo(to_libpq_url(database_url(load_settings())))
