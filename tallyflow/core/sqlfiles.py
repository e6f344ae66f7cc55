"""Loader for the statements in sql/: one statement per file, named verb_object.sql.

Postgres statements live in `sql/postgres/<domain>/`, DuckDB statements in
`sql/duckdb/<domain>/`; callers name them by `<domain>/<verb_object>`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import sqlalchemy as sa


@cache
def load_sql(path: str) -> str:
    """The text of sql/<path>.sql (without the trailing semicolon)."""
    text = resources.files("sql").joinpath(f"{path}.sql").read_text(encoding="utf-8")
    return text.strip().rstrip(";")


def sql(name: str) -> sa.TextClause:
    """sql/postgres/<name>.sql as a SQLAlchemy text clause with named binds (`:period_start`)."""
    return sa.text(load_sql(f"postgres/{name}"))


def duckdb_sql(name: str) -> str:
    """The text of sql/duckdb/<name>.sql, for DuckDB (`$name` parameters)."""
    return load_sql(f"duckdb/{name}")


def copy_statement(name: str) -> str:
    """The text of sql/postgres/<name>.sql, for psycopg's `cursor.copy()` (COPY ... FROM STDIN)."""
    return load_sql(f"postgres/{name}")
