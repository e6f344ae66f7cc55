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
