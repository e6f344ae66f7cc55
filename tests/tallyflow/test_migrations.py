"""The schema migrates from empty to head, down to base and up again."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.tables import Base
from tallyflow.core import migrate


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(engine: Engine) -> None:
    expected = set(Base.metadata.tables)
    assert migrate.current_revision(engine) is not None
    assert _tables(engine) == expected

    migrate.downgrade(engine, "base")
    engine.dispose()
    assert _tables(engine) == set()
    assert migrate.current_revision(engine) is None

    migrate.upgrade(engine)
    engine.dispose()
    assert _tables(engine) == expected


def test_head_revision_names_alembics_head(engine: Engine) -> None:
    """A new migration fails here until migrate.HEAD_REVISION names it (the schema check
    of every command reads the constant, not Alembic's script directory)."""
    assert migrate.head_revision(engine) == migrate.HEAD_REVISION
    assert migrate.current_revision(engine) == migrate.HEAD_REVISION


def test_current_revision_reads_what_alembic_reads(engine: Engine) -> None:
    from alembic.runtime.migration import MigrationContext

    def alembics() -> str | None:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    for target in ("0006_billable_metrics", "0001", "base"):
        migrate.downgrade(engine, target)
        engine.dispose()
        assert migrate.current_revision(engine) == alembics()
    assert migrate.current_revision(engine) is None  # at base the version table is empty
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
    assert migrate.current_revision(engine) is None  # and before Alembic ever ran
    migrate.upgrade(engine)
    engine.dispose()
    assert migrate.current_revision(engine) == alembics() == migrate.HEAD_REVISION


def test_subscription_overlap_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        plan_id = conn.execute(
            sa.text(
                "INSERT INTO plans (code, name, currency, base_fee)"
                " VALUES ('basic', 'Basic', 'USD', 10) RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO subscriptions (tenant_id, plan_id, starts_on, ends_on)"
                " VALUES ('t1', :p, '2026-01-01', '2026-02-01')"
            ),
            {"p": plan_id},
        )
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO subscriptions (tenant_id, plan_id, starts_on)"
                    " VALUES ('t1', :p, '2026-01-15')"
                ),
                {"p": plan_id},
            )
    except sa.exc.DBAPIError as exc:
        assert getattr(exc.orig, "sqlstate", None) == "23P01"
    else:  # pragma: no cover - the assertion below names the failure
        raise AssertionError("an overlapping subscription was accepted")
    # adjacent windows do not overlap (ends_on is exclusive)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO subscriptions (tenant_id, plan_id, starts_on)"
                " VALUES ('t1', :p, '2026-02-01')"
            ),
            {"p": plan_id},
        )
