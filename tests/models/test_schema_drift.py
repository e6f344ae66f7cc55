"""models/tables.py and the migrations describe one schema: Alembic's autogenerate comparison
of the metadata with a database migrated to head finds no difference (tables, columns, types,
nullability, server defaults, indexes, unique and foreign key constraints).

What autogenerate does not see is checked elsewhere: triggers and functions (the frozen
invoice rules) in tests/services/test_invoicing.py, check constraints by the tests that hit
them (test_invoice_invariants.py)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from models.tables import Base

# NOTE: differences that are not drift, each named with its reason. Empty today: add an
# entry only with a comment saying why the model and the migration may differ there.
BENIGN: list[tuple[str, str]] = []


def schema_diff(engine: Engine, metadata: sa.MetaData) -> list[Any]:
    """Autogenerate's list of operations that would turn the database into `metadata`."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        found = compare_metadata(context, metadata)
    return [d for d in found if _key(d) not in BENIGN]


def _key(diff: Any) -> tuple[str, str]:
    """(operation, object) of one difference, e.g. ("modify_type", "plans.name")."""
    if isinstance(diff, list):  # column changes come as a list of (op, schema, table, ...)
        diff = diff[0]
    op = diff[0]
    if op.startswith("modify_"):  # (op, schema, table, column, info, old, new)
        return (op, f"{diff[2]}.{diff[3]}")
    if op in ("add_column", "remove_column"):  # (op, schema, table, Column)
        return (op, f"{diff[2]}.{diff[3].name}")
    target = diff[1]  # a Table, Index or Constraint
    return (op, str(getattr(target, "name", target)))


def test_tables_py_matches_the_migrated_schema(engine: Engine) -> None:
    assert schema_diff(engine, Base.metadata) == []


def test_the_comparison_sees_a_drift(engine: Engine) -> None:
    """The comparison can fail: a model with one more column, one type changed and one index
    dropped gives exactly those differences."""
    drifted = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    plans = drifted.tables["plans"]
    plans.append_column(sa.Column("color", sa.Text(), nullable=True))
    plans.c.name.type = sa.Integer()
    usage_daily = drifted.tables["usage_daily"]
    (by_date,) = [i for i in usage_daily.indexes if i.name == "ix_usage_daily_usage_date"]
    usage_daily.indexes.discard(by_date)

    found = schema_diff(engine, drifted)
    kinds = sorted(_key(d) for d in found)
    assert kinds == [
        ("add_column", "plans.color"),
        ("modify_type", "plans.name"),
        ("remove_index", "ix_usage_daily_usage_date"),
    ], found
