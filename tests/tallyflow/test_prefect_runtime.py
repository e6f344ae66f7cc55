"""The background Prefect server: started once, reused, restarted when stale, never twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tallyflow.core.settings import Settings
from tallyflow.runtime import prefect_server as rt

pytestmark = pytest.mark.slow

RACE_SCRIPT = """
import sys
from tallyflow.core.settings import Settings
from tallyflow.runtime.prefect_server import ensure_background_server
info = ensure_background_server(Settings(home=sys.argv[1]), port=0)
print(info.pid, info.url)
"""


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Settings]:
    """A throwaway TALLYFLOW_HOME whose server is always stopped afterwards."""
    settings = Settings(home=tmp_path / "home")
    yield settings
    rt.stop_prefect_server(settings)
    assert rt.read_state(settings) is None


def test_racing_commands_start_one_server_which_is_reused_then_stopped(home: Settings) -> None:
    # Two commands on a fresh home at the same time: the file lock lets only one start it.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE_SCRIPT, str(home.home_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = {p.communicate(timeout=180)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1, outputs
    pid, url = outputs.pop().split()
    assert rt.is_healthy(url)

    # A later command reuses it (no new process).
    info = rt.ensure_background_server(home, port=0)
    assert (info.pid, info.url) == (int(pid), url)
    status = rt.server_status(home)
    assert status["running"] is True and status["pid"] == int(pid)

    assert rt.stop_prefect_server(home) is True
    assert not rt.pid_alive(int(pid))
    assert not rt.is_healthy(url)
    assert rt.server_status(home)["running"] is False
    assert rt.stop_prefect_server(home) is False


def test_dead_server_in_port_file_is_replaced(home: Settings) -> None:
    first = rt.ensure_background_server(home, port=0)
    os.killpg(first.pid, signal.SIGKILL)  # crashed: server.json now points at nothing

    second = rt.ensure_background_server(home, port=0)
    assert second.pid != first.pid
    assert rt.is_healthy(second.url)
    state = json.loads((home.prefect_home / "server.json").read_text())
    assert state["pid"] == second.pid


def test_stale_port_file_without_process_is_not_trusted(home: Settings) -> None:
    home.prefect_home.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (home.prefect_home / "server.json").write_text(
        json.dumps(
            {
                "pid": dead.pid,
                "port": 1,
                "url": rt.api_url_for(1),
                "owner": "background",
                "started_at": "2026-01-01T00:00:00+00:00",
                "log": "x",
            }
        )
    )
    assert rt.running_server(home) is None
    assert rt.server_status(home)["state"] == "stopped"


def test_hung_recorded_process_is_killed_before_a_restart(home: Settings) -> None:
    # A live process that never answers /api/health (hung server): discarded, group killed.
    hung = subprocess.Popen(["sleep", "60"], start_new_session=True)
    home.prefect_home.mkdir(parents=True)
    state = {
        "pid": hung.pid,
        "port": 1,
        "url": rt.api_url_for(1),
        "owner": "background",
        "started_at": "2026-01-01T00:00:00+00:00",
        "log": "x",
    }
    (home.prefect_home / "server.json").write_text(json.dumps(state))
    assert rt.running_server(home) is None
    rt.discard_stale(home)
    assert hung.wait(timeout=20) == -signal.SIGTERM
    assert rt.read_state(home) is None


def test_configured_api_url_wins(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert rt.ensure_prefect_api(home) == "http://prefect.example:4200/api"
    assert not home.prefect_home.exists()  # nothing started


def test_under_pytest_without_an_api_nothing_is_left_running(
    home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(rt, "configured_api_url", lambda: None)
    assert rt.ensure_prefect_api(home) == rt.EPHEMERAL
    assert not home.prefect_home.exists()


def test_export_points_this_process_at_the_server(
    home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED"):
        monkeypatch.setenv(var, os.environ.get(var, ""))
    if "prefect.context" in sys.modules:
        import prefect.context

        # Restored afterwards: export refreshes Prefect's global settings from the environment.
        monkeypatch.setattr(
            prefect.context, "GLOBAL_SETTINGS_CONTEXT", prefect.context.GLOBAL_SETTINGS_CONTEXT
        )
    home.prefect_home.mkdir(parents=True)
    rt.export_prefect_env(home, "http://127.0.0.1:4321/api")
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    assert os.environ["PREFECT_HOME"] == str(home.prefect_home)
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
