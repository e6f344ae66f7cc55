"""The one convention of flows and tasks (docs/ARCHITECTURE.md, "flows/tasks"), checked on
the source of every flow, task and service module:

- a flow (`@flow(name=<module name>)`) builds `Resources` once (`resources_from_env()`) and
  records its run with `flows.runs.flow_job_run(resources, "<flow name>", ...)`: no flow
  starts, finishes or fails a job_runs row itself, reads the flow-run id itself, or catches
  Exception/BaseException (the failure policy is job_run's);
- artifacts are created in a flow's own body, after its job_run block, never in a task or
  a service;
- a task (`@task(name=<function name>, cache_policy=NO_CACHE)`) that needs the database
  takes `resources: Resources` first; none takes an Engine, a Connection or Settings;
- every "now" and "today" comes from `tallyflow.core.clock`: no `.now(`, `.utcnow(` or
  `.today(` call in flows/, tasks/ or services/.

The checks are plain functions over source text, so the tests at the bottom show each one
failing on a broken copy of a real module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOW_RUN_HELPER = "flows/runs.py"  # the one module that reads the Prefect flow-run id
JOB_RUN_INTERNALS = {"start_job_run", "finish_job_run", "fail_job_run", "job_run"}
RESOURCE_TYPES = {"Engine", "Connection", "Settings"}
CLOCK_CALLS = {"now", "utcnow", "today"}


def sources(*folders: str) -> list[Path]:
    return sorted(
        p for folder in folders for p in (ROOT / folder).rglob("*.py") if p.name != "__init__.py"
    )


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def decorator_call(fn: ast.FunctionDef, name: str) -> ast.Call | ast.Name | None:
    """The `@name(...)` (or bare `@name`) decorator of `fn`, if any."""
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Name) and target.id == name:
            return dec if isinstance(dec, ast.Call | ast.Name) else None
    return None


def keyword(call: ast.Call | ast.Name | None, name: str) -> ast.expr | None:
    if not isinstance(call, ast.Call):
        return None
    return next((k.value for k in call.keywords if k.arg == name), None)


def functions(tree: ast.Module, decorator: str) -> list[ast.FunctionDef]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and decorator_call(n, decorator) is not None
    ]


def called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def calls(node: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call) and called_name(n) == name]


def flow_problems(source: str, path: str) -> list[str]:
    """What breaks the convention in a flows/ module holding a flow."""
    tree = ast.parse(source)
    flows = functions(tree, "flow")
    if not flows:
        return []
    if len(flows) != 1:
        return [f"{path}: {len(flows)} flows in one module"]
    (fn,) = flows
    name_arg = keyword(decorator_call(fn, "flow"), "name")
    name = name_arg.value if isinstance(name_arg, ast.Constant) else None
    out = []
    if name != Path(path).stem:
        out.append(f"{path}: flow {fn.name} has name={name!r}, not its module's name")
    if not calls(fn, "resources_from_env"):
        out.append(f"{path}: flow {fn.name} does not build Resources with resources_from_env()")
    jobs = [
        c.args[1].value
        for c in calls(tree, "flow_job_run")
        if len(c.args) > 1 and isinstance(c.args[1], ast.Constant)
    ]
    if jobs != [name]:
        out.append(f"{path}: records its run as {jobs}, not one flow_job_run(..., {name!r}, ...)")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "services.job_runs":
            used = sorted(a.name for a in node.names if a.name in JOB_RUN_INTERNALS)
            if used:
                out.append(f"{path}: records job runs itself ({', '.join(used)})")
        if isinstance(node, ast.ExceptHandler):
            caught = ast.unparse(node.type) if node.type is not None else "everything"
            if caught in {"everything", "Exception", "BaseException"}:
                out.append(f"{path}:{node.lineno}: catches {caught} (job_run records failures)")
    for block in ast.walk(tree):
        if isinstance(block, ast.With) and any(
            isinstance(i.context_expr, ast.Call) and called_name(i.context_expr) == "flow_job_run"
            for i in block.items
        ):
            for call in ast.walk(block):
                if isinstance(call, ast.Call) and (called_name(call) or "").endswith("_artifact"):
                    out.append(f"{path}:{call.lineno}: artifact inside the job_run block")
    return out


def task_problems(source: str, path: str) -> list[str]:
    """What breaks the convention in a tasks/ module."""
    out = []
    for fn in functions(ast.parse(source), "task"):
        dec = decorator_call(fn, "task")
        name = keyword(dec, "name")
        if not (isinstance(name, ast.Constant) and name.value == fn.name):
            out.append(f"{path}: task {fn.name} is not named {fn.name!r}")
        policy = keyword(dec, "cache_policy")
        if not (isinstance(policy, ast.Name) and policy.id == "NO_CACHE"):
            shown = ast.unparse(policy) if policy is not None else "the default"
            out.append(f"{path}: task {fn.name} has cache_policy {shown}, not NO_CACHE")
        params = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        for i, arg in enumerate(params):
            annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
            bare = RESOURCE_TYPES & set(annotation.replace(".", " ").replace("|", " ").split())
            if bare:
                out.append(f"{path}: task {fn.name} takes {arg.arg}: {annotation}, not Resources")
            if "Resources" in annotation and (arg.arg != "resources" or i != 0):
                out.append(f"{path}: task {fn.name} takes Resources as {arg.arg!r} (#{i + 1})")
            if arg.arg == "resources" and annotation != "Resources":
                out.append(f"{path}: task {fn.name} takes resources: {annotation or '?'}")
    return out


def clock_problems(source: str, path: str) -> list[str]:
    """Calls that read the wall clock other than through tallyflow.core.clock."""
    return [
        f"{path}:{n.lineno}: {ast.unparse(n.func)}() (use tallyflow.core.clock)"
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in CLOCK_CALLS
    ]


def placement_problems(source: str, path: str) -> list[str]:
    """The flow-run id is read in flows/runs.py only; artifacts are created in flows only."""
    out = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names]
            if path != FLOW_RUN_HELPER and any(n.startswith("prefect.runtime") for n in names):
                out.append(f"{path}: reads the flow-run id itself (prefect.runtime)")
            if not path.startswith("flows/") and any(n == "prefect.artifacts" for n in names):
                out.append(f"{path}: creates artifacts outside a flow")
        if (
            path != FLOW_RUN_HELPER
            and isinstance(node, ast.Attribute)
            and node.attr in {"flow_run", "get_id"}
            and ast.unparse(node).startswith(("runtime.", "flow_run.", "prefect.runtime"))
        ):
            out.append(f"{path}:{node.lineno}: reads the flow-run id itself ({ast.unparse(node)})")
    flow_bodies = {id(n) for fn in functions(tree, "flow") for n in ast.walk(fn)}
    for call in ast.walk(tree):
        if (
            isinstance(call, ast.Call)
            and (called_name(call) or "").startswith("create_")
            and (called_name(call) or "").endswith("_artifact")
            and id(call) not in flow_bodies
        ):
            out.append(f"{path}:{call.lineno}: artifact created outside a flow's body")
    return out


FLOW_MODULES = [p for p in sources("flows") if functions(ast.parse(p.read_text()), "flow")]
TASK_MODULES = sources("tasks")
CLOCKED = sources("flows", "tasks", "services")


def test_the_modules_are_found() -> None:
    names = {p.stem for p in FLOW_MODULES}
    assert {"ingest_usage", "backfill_usage", "close_billing_period"} <= names
    assert {"finalize_invoices", "deliver_webhooks"} <= names
    assert len(TASK_MODULES) >= 6 and len(CLOCKED) > 40


@pytest.mark.parametrize("path", FLOW_MODULES, ids=rel)
def test_flow_follows_the_convention(path: Path) -> None:
    assert flow_problems(path.read_text(), rel(path)) == []


@pytest.mark.parametrize("path", TASK_MODULES, ids=rel)
def test_tasks_follow_the_convention(path: Path) -> None:
    assert task_problems(path.read_text(), rel(path)) == []


@pytest.mark.parametrize("path", CLOCKED, ids=rel)
def test_every_now_comes_from_the_clock(path: Path) -> None:
    assert clock_problems(path.read_text(), rel(path)) == []


@pytest.mark.parametrize("path", CLOCKED, ids=rel)
def test_flow_run_id_and_artifacts_have_one_home(path: Path) -> None:
    assert placement_problems(path.read_text(), rel(path)) == []


# ---------------------------------------------------------------------------------------
# Each check fails on a broken copy of a real module (so none of the above passes vacuously)
# ---------------------------------------------------------------------------------------


def broken(path: str, old: str, new: str) -> str:
    source = (ROOT / path).read_text()
    assert old in source, f"{old!r} is no longer in {path}: update this test"
    return source.replace(old, new, 1)


def test_a_flow_without_job_run_is_caught() -> None:
    path = "flows/deliver_webhooks.py"
    source = broken(
        path,
        'with flow_job_run(resources, "deliver_webhooks", {"limit": limit}) as run:',
        "if True:",
    )
    assert any("records its run as []" in p for p in flow_problems(source, path))


def test_a_flow_recording_under_another_job_name_is_caught() -> None:
    path = "flows/finalize_invoices.py"
    source = broken(path, '"finalize_invoices", parameters', '"finalize", parameters')
    assert any("records its run as ['finalize']" in p for p in flow_problems(source, path))


def test_a_flow_recording_its_own_failure_is_caught() -> None:
    path = "flows/backfill_usage.py"
    source = broken(
        path,
        "from services.job_runs import USAGE_LOCK_KEY, usage_write_lock",
        "from services.job_runs import USAGE_LOCK_KEY, fail_job_run, usage_write_lock",
    )
    source = broken_text(
        source,
        "            run.succeed_in(conn, summary)\n",
        "        try:\n            pass\n"
        "        except Exception as exc:\n            fail_job_run(res.engine, run.id, exc)\n"
        "            raise\n",
    )
    problems = flow_problems(source, path)
    assert any("records job runs itself (fail_job_run)" in p for p in problems)
    assert any("catches Exception" in p for p in problems)


def test_a_flow_reading_the_flow_run_id_itself_is_caught() -> None:
    path = "flows/close_billing_period.py"
    source = broken(
        path,
        "from prefect import flow\n",
        "from prefect import flow, runtime\n\nFLOW_RUN = runtime.flow_run.id\n",
    )
    assert any("reads the flow-run id itself" in p for p in placement_problems(source, path))


def test_an_artifact_inside_the_job_run_block_or_in_a_task_is_caught() -> None:
    path = "flows/close_billing_period.py"
    source = broken(
        path,
        "        run.succeed(summary)\n",
        '        run.succeed(summary)\n        create_markdown_artifact(markdown="x")\n',
    )
    assert any("artifact inside the job_run block" in p for p in flow_problems(source, path))
    path = "tasks/deliver_webhooks.py"
    source = broken(
        path,
        "from prefect import task\n",
        "from prefect import task\nfrom prefect.artifacts import create_markdown_artifact\n",
    )
    source = broken_text(
        source,
        "    settings = resources.settings\n",
        '    settings = resources.settings\n    create_markdown_artifact(markdown="x")\n',
    )
    problems = placement_problems(source, path)
    assert any("creates artifacts outside a flow" in p for p in problems)
    assert any("artifact created outside a flow's body" in p for p in problems)


def test_a_task_with_another_cache_policy_is_caught() -> None:
    path = "tasks/ingest.py"
    source = broken(
        path,
        '@task(name="commit_ingest_run", cache_policy=NO_CACHE)',
        '@task(name="commit_ingest_run", cache_policy=NONE)',
    )
    assert task_problems(source, path) == [
        f"{path}: task commit_ingest_run has cache_policy NONE, not NO_CACHE"
    ]
    source = broken(path, '@task(name="commit_ingest_run", cache_policy=NO_CACHE)', "@task")
    problems = task_problems(source, path)
    assert any("has cache_policy the default" in p for p in problems)
    assert any("is not named 'commit_ingest_run'" in p for p in problems)


def test_a_task_taking_an_engine_is_caught() -> None:
    path = "tasks/ingest.py"
    source = broken(path, "    resources: Resources, roots: list[str]", "    engine: Engine, roots")
    assert task_problems(source, path) == [
        f"{path}: task discover_landing_files takes engine: Engine, not Resources"
    ]
    source = broken(path, "    resources: Resources, roots: list[str]", "    roots, res: Resources")
    assert task_problems(source, path) == [
        f"{path}: task discover_landing_files takes Resources as 'res' (#2)"
    ]


def test_a_wall_clock_read_is_caught() -> None:
    path = "tasks/generate_period_invoices.py"
    source = broken(path, "now=now or utc_now(),", "now=now or dt.datetime.now(dt.UTC),")
    line = next(n for n, text in enumerate(source.splitlines(), 1) if "datetime.now(" in text)
    assert clock_problems(source, path) == [
        f"{path}:{line}: dt.datetime.now() (use tallyflow.core.clock)"
    ]
    path = "services/usage.py"
    source = (ROOT / path).read_text() + "\nTODAY = dt.date.today()\n"
    assert [p.split(": ", 1)[1] for p in clock_problems(source, path)] == [
        "dt.date.today() (use tallyflow.core.clock)"
    ]


def broken_text(source: str, old: str, new: str) -> str:
    assert old in source, f"{old!r} is gone: update this test"
    return source.replace(old, new, 1)
