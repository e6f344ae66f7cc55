"""models/tables.py and the migrations describe the same schema (columns, types, indexes,
foreign keys, and the names of the check constraints, which autogenerate does not compare)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from models.tables import Base


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_check_constraints_match_the_models(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    for table in Base.metadata.sorted_tables:
        expected = {
            str(c.name)
            for c in table.constraints
            if isinstance(c, sa.CheckConstraint) and c.name is not None
        }
        found = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert found == expected, table.name
