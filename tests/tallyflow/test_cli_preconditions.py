"""What a flow command does before its flow runs, and what it leaves on stderr at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tallyflow.cli.app import app as cli
from tallyflow.core.db import dispose_engines, to_libpq_url
from tallyflow.core.settings import Settings
from tests.conftest import _with_database


@pytest.fixture
def unmigrated_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database that `tallyflow db upgrade` never ran on."""
    name = f"tf_bare_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(to_libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(pg_server_url, name)
    dispose_engines()
    with psycopg.connect(to_libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_flow_command_on_an_unmigrated_database_says_what_to_do(
    unmigrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALLYFLOW_DATABASE_URL", unmigrated_url)
    monkeypatch.setenv("TALLYFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TALLYFLOW_LANDING", str(tmp_path))
    monkeypatch.setenv("TALLYFLOW_LAKE", str(tmp_path / "lake"))
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    assert "run `tallyflow db upgrade` first" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert not (tmp_path / "lake").exists()  # nothing was written


def test_ingest_command_leaves_no_leak_report_on_stderr(
    settings: Settings, prefect_harness: None
) -> None:
    """The event parser's DuckDB database is closed at exit; left open, nanobind prints
    "leaked N instances" on stderr after every command that parsed events."""
    from prefect.settings import PREFECT_API_URL

    events = settings.landing_path / "a.jsonl"
    events.write_text(
        '{"event_id":"e1","tenant_id":"acme","metric":"api.calls","quantity":1,'
        '"occurred_at":"2026-11-01T00:00:00Z"}\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "tallyflow.cli", "ingest", str(events), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accepted"] == 1
    assert "leaked" not in done.stderr and "nanobind" not in done.stderr, done.stderr[-2000:]


def test_a_run_failing_on_the_secret_key_is_bad_usage_any_other_failure_a_failed_run(
    settings: Settings,
) -> None:
    import typer

    from tallyflow.cli.flow_runs import run_flow
    from tallyflow.core.secrets import SecretKeyError

    def failing(exc: Exception) -> object:
        def flow() -> None:
            raise exc

        return lambda: flow

    # NOTE: the secret-key error class is imported only once a run failed (cryptography is
    # not loaded by runs that seal nothing); the mapping must hold all the same.
    with pytest.raises(typer.BadParameter, match="no key"):
        run_flow(failing(SecretKeyError("no key")))  # type: ignore[arg-type]
    with pytest.raises(typer.Exit) as failed:
        run_flow(failing(RuntimeError("disk on fire")))  # type: ignore[arg-type]
    assert failed.value.exit_code == 1
