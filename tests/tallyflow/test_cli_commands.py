"""`tallyflow ingest`, `backfill`, `db upgrade` and `serve` through the command line: the
--json shapes, the exit codes (0 success, 1 a failed run without a traceback, 2 bad usage
with a message), and the embedded default database.

Flow commands run in process (typer's CliRunner) against the session's Prefect harness;
`serve` and the embedded database run as real subprocesses."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from tallyflow.cli.app import app
from tallyflow.core import migrate
from tallyflow.core.db import get_engine
from tallyflow.core.settings import Settings
from tests.helpers import ev, usage, write_jsonl
from tests.services.test_invoicing import seed_plan, subscribe

INGEST_KEYS = {
    "files",
    "skipped_files",
    "rows",
    "accepted",
    "duplicates",
    "rejected",
    "rejected_by_reason",
    "days",
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def assert_clean_failure(result: Result, code: int) -> None:
    """Exit `code` chosen by the command (typer.Exit / a usage error), not an escaped
    exception, with a message on stderr and no traceback."""
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.strip(), "no message"
    assert "Traceback" not in result.output


def _landing_files(settings: Settings) -> None:
    write_jsonl(
        settings.landing_path / "nov" / "a.jsonl",
        [
            ev("e1", quantity="10", occurred_at="2026-11-02T10:00:00Z"),
            ev("e2", quantity="2.5", occurred_at="2026-11-02T23:30:00-05:00"),  # Nov 3 UTC
            ev("e1", quantity="10", occurred_at="2026-11-02T10:00:00Z"),  # duplicate
            ev("e3", metric="Not A Metric"),  # invalid_metric
            "not json",  # malformed_row
            ev("g1", tenant="globex", quantity="4", occurred_at="2026-11-03T12:00:00Z"),
        ],
    )


# --- ingest ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_ingest_json_shape_and_rerun(settings: Settings, engine: Engine) -> None:
    _landing_files(settings)
    result = invoke("ingest", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert set(payload) == INGEST_KEYS
    assert payload == {
        "files": 1,
        "skipped_files": 0,
        "rows": 6,
        "accepted": 3,
        "duplicates": 1,
        "rejected": 2,  # rejected rows do not fail the run: exit 0
        "rejected_by_reason": {"invalid_metric": 1, "malformed_row": 1},
        "days": ["2026-11-02", "2026-11-03"],
    }
    assert usage(engine) == {
        ("acme", "api.calls", "2026-11-02"): (Decimal("10"), 1, Decimal("10")),
        ("acme", "api.calls", "2026-11-03"): (Decimal("2.5"), 1, Decimal("2.5")),
        ("globex", "api.calls", "2026-11-03"): (Decimal("4"), 1, Decimal("4")),
    }

    again = invoke("ingest", str(settings.landing_path / "nov"))  # a path, readable output
    assert again.exit_code == 0, again.output
    assert "0 files read (1 already ingested), 0 rows" in again.stdout


def test_ingest_missing_path_is_bad_usage(settings: Settings) -> None:
    result = invoke("ingest", "--json", str(settings.landing_path / "nope"))
    assert_clean_failure(result, 2)
    assert "no such file or folder" in result.stderr and result.stdout == ""


def test_ingest_without_paths_and_no_landing_folder_is_bad_usage(settings: Settings) -> None:
    settings.landing_path.rmdir()
    result = invoke("ingest", "--json")
    assert_clean_failure(result, 2)
    message = " ".join(result.stderr.replace("│", " ").split())  # the box wraps it
    assert "no such file or folder" in message and "TALLYFLOW_LANDING" in message
    assert result.stdout == ""


@pytest.mark.usefixtures("prefect_harness")
def test_ingest_failed_run_exits_1(
    settings: Settings, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _landing_files(settings)
    not_a_folder = tmp_path / "lake-is-a-file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("TALLYFLOW_LAKE", str(not_a_folder))
    result = invoke("ingest", "--json")
    assert_clean_failure(result, 1)
    assert "error: the run failed" in result.stderr and result.stdout == ""
    assert usage(engine) == {}
    (status,) = [r[0] for r in engine.connect().execute(sa.text("SELECT status FROM job_runs"))]
    assert status == "failed"


# --- backfill -------------------------------------------------------------------------------


def _seed_november_plan(engine: Engine) -> None:
    with engine.begin() as conn:
        plan = seed_plan(
            conn,
            "metered",
            base_fee="10.00",
            quotas={"api.calls": {"pricing": {"model": "per_unit", "unit_price": "1"}}},
        )
        subscribe(conn, "acme", plan, "2026-11-01")
        subscribe(conn, "globex", plan, "2026-11-01")


def _draft_totals(engine: Engine) -> dict[str, Decimal]:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT tenant_id, total FROM invoices WHERE status = 'draft' ORDER BY 1")
        ).all()
    return {r[0]: r[1] for r in found}


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_one_tenant_and_regenerate_its_drafts(settings: Settings, engine: Engine) -> None:
    _seed_november_plan(engine)
    _landing_files(settings)
    assert invoke("ingest").exit_code == 0
    made = invoke("invoices", "generate", "--period", "2026-11", "--json")
    assert made.exit_code == 0, made.output
    billed = _draft_totals(engine)
    assert billed == {"acme": Decimal("22.500000"), "globex": Decimal("14.000000")}

    # usage_daily loses its rows (a bad manual fix, say) and the drafts follow it
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM usage_daily"))
    assert invoke("invoices", "generate", "--period", "2026-11").exit_code == 0
    assert _draft_totals(engine) == {"acme": Decimal("10.000000"), "globex": Decimal("10.000000")}

    result = invoke(
        "backfill",
        "--start",
        "2026-11-01",
        "--end",
        "2026-11-30",
        "--tenant",
        "acme",
        "--regenerate-invoices",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"days": 30, "rows_written": 2}
    # only acme is recomputed from the lake, and only acme's draft refreshed
    assert usage(engine) == {
        ("acme", "api.calls", "2026-11-02"): (Decimal("10"), 1, Decimal("10")),
        ("acme", "api.calls", "2026-11-03"): (Decimal("2.5"), 1, Decimal("2.5")),
    }
    assert _draft_totals(engine) == {"acme": billed["acme"], "globex": Decimal("10.000000")}
    with engine.connect() as conn:
        summary = conn.execute(
            sa.text(
                "SELECT summary FROM job_runs WHERE job = 'backfill_usage' AND status = 'succeeded'"
            )
        ).scalar_one()
    assert summary["invoices_regenerated"] == {"2026-11": 1}  # acme's draft, refreshed

    # without --tenant: every tenant; readable output
    everyone = invoke("backfill", "--start", "2026-11-02", "--end", "2026-11-03")
    assert everyone.exit_code == 0, everyone.output
    assert "2 days recomputed, 3 usage rows" in everyone.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-11-31", "--end", "2026-12-01"], "is not a date"),
        (["--start", "yesterday", "--end", "2026-12-01"], "is not a date"),
        (["--start", "2026-11-05", "--end", "2026-11-04"], "is before --start"),
        (["--end", "2026-11-04"], "--start"),
    ],
)
def test_backfill_bad_usage_exits_2(settings: Settings, args: list[str], message: str) -> None:
    result = invoke("backfill", *args, "--json")
    assert_clean_failure(result, 2)
    assert message in result.stderr and result.stdout == ""


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_failed_run_exits_1(
    settings: Settings, pg_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    gone = make_url(pg_server_url).set(database="tf_no_such_database")
    monkeypatch.setenv("TALLYFLOW_DATABASE_URL", gone.render_as_string(hide_password=False))
    result = invoke("backfill", "--start", "2026-11-01", "--end", "2026-11-02", "--json")
    assert_clean_failure(result, 1)
    assert result.stderr.startswith("error: ") and "tf_no_such_database" in result.stderr
    assert result.stdout == ""


# --- db upgrade -----------------------------------------------------------------------------


@pytest.fixture
def empty_database(pg_server_url: str, settings: Settings) -> Iterator[str]:
    """A database with no schema at all, named by TALLYFLOW_DATABASE_URL for the CLI."""
    import uuid

    from sqlalchemy.engine import make_url

    from tallyflow.core.db import dispose_engines, to_libpq_url

    name = f"tf_empty_{uuid.uuid4().hex[:12]}"
    import psycopg

    with psycopg.connect(to_libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    os.environ["TALLYFLOW_DATABASE_URL"] = url  # restored by the settings fixture's monkeypatch
    yield url
    dispose_engines()
    with psycopg.connect(to_libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_db_upgrade_migrates_an_empty_database(empty_database: str) -> None:
    engine = get_engine(Settings(database_url=empty_database))
    assert migrate.current_revision(engine) is None
    result = invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    head = migrate.current_revision(engine)
    assert head is not None and f"database at revision {head}" in result.stderr
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"usage_daily", "quota_usage", "invoices", "invoice_lines", "api_keys"} <= tables
    again = invoke("db", "upgrade")  # at head already: nothing to do, still 0
    assert again.exit_code == 0, again.output
    assert migrate.current_revision(engine) == head


def test_db_upgrade_unknown_revision_is_bad_usage(empty_database: str) -> None:
    result = invoke("db", "upgrade", "no-such-revision")
    assert_clean_failure(result, 2)
    assert "no-such-revision" in result.stderr


def test_db_upgrade_unreachable_database_exits_1(
    settings: Settings, pg_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    gone = make_url(pg_server_url).set(database="tf_no_such_database")
    monkeypatch.setenv("TALLYFLOW_DATABASE_URL", gone.render_as_string(hide_password=False))
    result = invoke("db", "upgrade")
    assert_clean_failure(result, 1)
    assert "tf_no_such_database" in result.stderr


# --- the embedded default database ---------------------------------------------------------


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tallyflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A TALLYFLOW_HOME for the embedded Postgres; its server is stopped and deleted after.

    NOTE: not under pytest's tmp dirs: those are 0700, and the server runs as the
    `pgserver` user when we are root (as in tests/conftest.py)."""
    root = Path(tempfile.mkdtemp(prefix="tallyflow-embedded-"))
    root.chmod(0o755)
    yield root / "home"
    pgdata = root / "home" / "pg"
    if pgdata.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            pgserver.get_server(pgdata, cleanup_mode="delete").cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_embedded_default_database(embedded_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFLOW_")}
    env["TALLYFLOW_HOME"] = str(embedded_home)
    env["TALLYFLOW_ENV_FILE"] = ""
    upgraded = _cli(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database at revision" in upgraded.stderr
    assert (embedded_home / "pg" / "PG_VERSION").exists()  # the server lives in the home

    url = _cli(env, "db", "url")
    assert url.returncode == 0, url.stderr
    assert url.stdout.startswith("postgresql://")

    made = _cli(env, "api-key", "create", "--name", "embedded", "--scope", "billing.read")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("tf_") and made.stdout == key + "\n"
    listed = _cli(env, "api-key", "list")  # a later command finds the same database
    assert listed.returncode == 0, listed.stderr
    assert "\tembedded\tbilling.read" in listed.stdout


# --- serve ----------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.slow
def test_serve_answers_and_stops_on_sigterm(settings: Settings, tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    command = [sys.executable, "-m", "tallyflow.cli", "serve", "--port", "0", "--no-access-log"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=dict(os.environ), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        found = None
        while found is None:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log_path.read_text())
            time.sleep(0.2)
        base = found.group(1)
        assert not base.endswith(":0")
        status, spec = _get(f"{base}/openapi.json")
        assert status == 200 and "/api/billing/tenants/{tenant_id}/quotas:check" in spec["paths"]
        try:
            urllib.request.urlopen(f"{base}/api/billing/plans", timeout=10)
            raise AssertionError("an API call without a key was answered")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        proc.send_signal(signal.SIGTERM)
        # NOTE: uvicorn shuts down gracefully, then re-raises the signal it caught (so a
        # supervisor sees why it ended): the exit status is "terminated by SIGTERM".
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text(errors="replace")
    assert "Finished server process" in output  # the graceful path, not a kill
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "message"), [(["--port", "70000"], "--port"), (["--port", "x"], "--port")]
)
def test_serve_bad_usage_exits_2(settings: Settings, args: list[str], message: str) -> None:
    result = invoke("serve", *args)
    assert_clean_failure(result, 2)
    assert message in result.stderr
