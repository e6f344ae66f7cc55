"""Alembic migrations, driven programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` in one transaction."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def require_current(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not this code's (SchemaOutdated)."""
    from tallyflow.core.errors import SchemaOutdated

    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        raise SchemaOutdated(
            f"the database is at migration {current or 'none'}, this tallyflow needs {head}:"
            " run `tallyflow db upgrade` first"
        )


def invoice_count(engine: Engine) -> int:
    """Invoices in the database (0 when the table does not exist yet)."""
    import sqlalchemy as sa

    from tallyflow.core.sqlfiles import sql

    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("invoices"):
            return 0
        return int(conn.execute(sql("ops/count_invoices")).scalar_one())
