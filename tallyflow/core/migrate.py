"""Alembic migrations, driven programmatically (no alembic.ini needed).

NOTE: every command checks the schema first (`require_current`) without Alembic: reading
the head from Alembic's script directory imports Alembic, Mako and Pygments and loads every
migration file (about 110 modules), which a no-op `tallyflow ingest` paid on each call
(bench/README.md, "Start-up"). The head is `HEAD_REVISION`, held equal to Alembic's by
tests/tallyflow/test_migrations.py; the current revision is read from alembic_version.
Alembic itself is imported only to migrate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

# The newest migration this code ships (a new migration fails the test until named here).
HEAD_REVISION = "0014_event_key_hashes"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` in one transaction."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The database's migration (its alembic_version row), None before the first one.

    Several rows (branches, which this project does not have) read as their sorted list.
    """
    from tallyflow.core.sqlfiles import sql

    with engine.connect() as conn:
        if not conn.execute(sql("ops/select_has_schema_version")).scalar_one():
            return None
        versions = sorted(conn.execute(sql("ops/select_schema_versions")).scalars())
    return ",".join(versions) or None


def head_revision(engine: Engine) -> str | None:
    """The newest migration in Alembic's script directory (tests hold HEAD_REVISION to it)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def require_current(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not this code's (SchemaOutdated)."""
    from tallyflow.core.errors import SchemaOutdated

    current, head = current_revision(engine), HEAD_REVISION
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
