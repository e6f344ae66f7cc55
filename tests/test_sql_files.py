"""Every statement the code names exists in sql/, and every file in sql/ is used and says
its purpose on its first line."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALL = re.compile(r"\b(sql|duckdb_sql|copy_statement)\(\s*\"([a-z_]+/[a-z0-9_]+)\"")
FOLDER = {"sql": "postgres", "copy_statement": "postgres", "duckdb_sql": "duckdb"}


def named_statements() -> set[str]:
    names = set()
    for package in ("tallyflow", "models", "services", "tasks", "flows", "api"):
        for path in (ROOT / package).rglob("*.py"):
            for loader, name in CALL.findall(path.read_text()):
                names.add(f"{FOLDER[loader]}/{name}")
    return names


def test_every_named_statement_exists() -> None:
    missing = sorted(n for n in named_statements() if not (ROOT / "sql" / f"{n}.sql").exists())
    assert not missing, f"statements named in code but not in sql/: {missing}"


def quoted_names() -> set[str]:
    """Every string literal of the code (statements chosen from a table, e.g. by aggregation)."""
    names = set()
    for package in ("tallyflow", "models", "services", "tasks", "flows", "api"):
        for path in (ROOT / package).rglob("*.py"):
            names.update(re.findall(r"\"([a-z0-9_]+)\"", path.read_text()))
    return names


def test_every_statement_file_is_used_and_has_a_purpose() -> None:
    used = named_statements()
    quoted = quoted_names()
    files = sorted((ROOT / "sql").rglob("*.sql"))
    assert files
    unused = [
        str(f.relative_to(ROOT))
        for f in files
        if str(f.relative_to(ROOT / "sql"))[:-4] not in used and f.stem not in quoted
    ]
    assert not unused, f"statement files no code names: {unused}"
    vague = [str(f) for f in files if not f.read_text().startswith("-- purpose: ")]
    assert not vague, f"files without a `-- purpose:` first line: {vague}"
