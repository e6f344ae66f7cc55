"""Loader for the statements in sql/: one statement per file, named verb_object.sql."""

from __future__ import annotations

from functools import cache
from importlib import resources

import sqlalchemy as sa


@cache
def load_sql(name: str) -> str:
    """The text of sql/<name>.sql (without the leading purpose comment)."""
    text = resources.files("sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")
    return text.strip().rstrip(";")


def sql(name: str) -> sa.TextClause:
    """sql/<name>.sql as a SQLAlchemy text clause with named binds (`:period_start`)."""
    return sa.text(load_sql(name))
