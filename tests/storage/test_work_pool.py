"""A process work pool for real: a Prefect server started for the test, prefect.yaml
deployed to the pool, two `prefect worker` processes, and the ingest and backfill
deployments run through them (the commands docs/RUNNING.md gives, "A work pool, as tested")."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from tallyflow.core.settings import Settings
from tests.helpers import ev, rows, usage, write_jsonl

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PREFECT = str(REPO / ".venv" / "bin" / "prefect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def prefect_env(settings: Settings, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A Prefect server of its own (SQLite under tmp), stopped after the test."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    server = _start(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        tmp_path / "server.log",
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.5)
        yield env
    finally:
        _stop(server)


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_deployments_run_on_two_process_workers(
    settings: Settings, engine: Engine, prefect_env: dict[str, str], tmp_path: Path
) -> None:
    write_jsonl(settings.landing_path / "usage.jsonl", [ev("e1", quantity=2), ev("e2", quantity=3)])
    _run(prefect_env, "work-pool", "create", "tallyflow", "--type", "process")
    _run(
        prefect_env, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"
    )
    workers = [
        _start(
            [PREFECT, "worker", "start", "--pool", "tallyflow", "--name", f"worker-{i}"],
            prefect_env,
            tmp_path / f"worker-{i}.log",
        )
        for i in (1, 2)
    ]
    try:
        _run(prefect_env, "deployment", "run", "ingest_usage/nightly-usage", "--watch")
        assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(5), 2, Decimal(3))
        _run(
            prefect_env,
            "deployment",
            "run",
            "backfill_usage/usage-backfill",
            "-p",
            "start=2026-10-01",
            "-p",
            "end=2026-10-31",
            "--watch",
        )
    finally:
        for worker in workers:
            _stop(worker)
    jobs = rows(engine, "SELECT job, status FROM job_runs ORDER BY started_at")
    assert ("ingest_usage", "succeeded") in jobs and ("backfill_usage", "succeeded") in jobs
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(5), 2, Decimal(3))
