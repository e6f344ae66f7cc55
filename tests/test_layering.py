"""The floors of docs/ARCHITECTURE.md: every module imports only from its floor or below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# floor of each package (longest prefix wins); a module may import floors <= its own
FLOORS = {
    "tallyflow.core": 0,
    "models": 1,
    "sql": 1,
    "services": 2,
    "tasks": 3,
    "flows": 4,
    "api": 5,
    "tallyflow.cli": 5,
    "tallyflow.runtime": 4,  # the Prefect server, deployments and the Dask runner, beside flows
    "tallyflow.synthetic": 5,
}
# third-party packages a floor may not use at all
FORBIDDEN = {0: {"prefect", "fastapi"}, 1: {"prefect", "fastapi"}, 2: {"prefect", "fastapi"}}


def floor_of(module: str) -> int | None:
    best = max(
        (p for p in FLOORS if module == p or module.startswith(p + ".")), key=len, default=None
    )
    return FLOORS[best] if best else None


def modules() -> list[tuple[str, Path]]:
    out = []
    for package in ("tallyflow", "models", "services", "tasks", "flows", "api"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            name = name.removesuffix(".__init__")
            if name != "tallyflow":  # the empty top-level package
                out.append((name, path))
    return out


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize(("module", "path"), modules(), ids=lambda v: str(v))
def test_imports_only_downward(module: str, path: Path) -> None:
    own = floor_of(module)
    assert own is not None, f"{module} is on no floor: add it to docs/ARCHITECTURE.md and here"
    upward = sorted(
        name
        for name in imported(path)
        if (floor_of(name) or 0) > own and floor_of(name) is not None
    )
    assert not upward, f"{module} (floor {own}) imports from above: {upward}"
    banned = sorted(n for n in imported(path) if n.split(".")[0] in FORBIDDEN.get(own, set()))
    assert not banned, f"{module} (floor {own}) must not use {banned}"


def test_tasks_hold_only_prefect_tasks() -> None:
    """A module without `@task` does not live in tasks/."""
    for path in sorted((ROOT / "tasks").glob("*.py")):
        if path.name != "__init__.py":
            assert "@task" in path.read_text(), f"{path.name} holds no Prefect task"
