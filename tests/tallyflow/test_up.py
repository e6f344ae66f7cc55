"""`tallyflow up`: Prefect server + UI, the four deployments served, the API; Ctrl-C stops
all of it and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tallyflow.cli.commands.up import up_state_file
from tallyflow.core.settings import Settings
from tallyflow.runtime import prefect_server as rt
from tallyflow.runtime.deployments import load_specs

pytestmark = pytest.mark.slow

# every deployment of deployments/prefect.yaml
DEPLOYMENTS = len(load_specs())


def _get(url: str, body: dict[str, object] | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def _wait_until_up(proc: subprocess.Popen[bytes], state: Path) -> tuple[dict[str, str], list[str]]:
    """The URLs `up` recorded in its state file, once the four deployments are served."""
    deadline = time.monotonic() + 180
    last: object = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "tallyflow up exited early"
        try:
            urls = json.loads(state.read_text())
            names = _get(f"{urls['prefect_url']}/deployments/filter", {})
            _get(f"{urls['api_url']}/openapi.json")
            assert isinstance(names, list)
            if len(names) == DEPLOYMENTS:
                return urls, sorted(d["name"] for d in names)
            last = names
        except (OSError, ValueError) as exc:  # not up yet (no state file, connection refused)
            last = exc
        time.sleep(1)
    raise AssertionError(f"tallyflow up did not come up: {last!r}")


def test_up_serves_everything_and_ctrl_c_stops_it_all(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    command = [sys.executable, "-m", "tallyflow.cli", "up"]
    command += ["--prefect-port", "0", "--api-port", "0"]  # any free port: no race
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    state = up_state_file(settings.home_path)
    descendants: list[psutil.Process] = []
    try:
        urls, names = _wait_until_up(proc, state)
        assert names == sorted(spec.name for spec in load_specs())
        assert urls["ui_url"] + "/api" == urls["prefect_url"]
        prefect_port = int(urls["prefect_url"].rsplit(":", 1)[1].split("/")[0])
        api_port = int(urls["api_url"].rsplit(":", 1)[1])
        assert 0 not in (prefect_port, api_port)
        # the banner names the bound ports, not 0
        assert urls["api_url"] in (tmp_path / "up.log").read_text(errors="replace")
        # CLI flow commands meanwhile report to the same server.
        assert rt.running_server(settings) is not None
        assert rt.read_state(settings).port == prefect_port  # type: ignore[union-attr]
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert len(descendants) >= 3

        proc.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=90) == 0
        _gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
        assert rt.read_state(settings) is None
        assert not state.exists()
        assert rt.port_free(prefect_port) and rt.port_free(api_port)
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in descendants:
            if p.is_running():
                p.kill()
        log.close()
        print((tmp_path / "up.log").read_text(errors="replace")[-3000:])


def test_up_with_prefect_api_url_uses_that_server_and_leaves_it_running(
    settings: Settings, tmp_path: Path
) -> None:
    existing_home = Settings(home=tmp_path / "existing")
    existing = rt.ensure_background_server(existing_home, port=0)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    env["PREFECT_API_URL"] = existing.url
    command = [sys.executable, "-m", "tallyflow.cli", "up", "--no-api"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        names: object = []
        while time.monotonic() < deadline and not (
            isinstance(names, list) and len(names) == DEPLOYMENTS
        ):
            assert proc.poll() is None, "tallyflow up exited early"
            time.sleep(1)
            names = _get(f"{existing.url}/deployments/filter", {})
        assert isinstance(names, list) and len(names) == DEPLOYMENTS
        assert rt.read_state(settings) is None  # no server of its own
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert rt.is_healthy(existing.url)  # not ours to stop
    finally:
        if proc.poll() is None:
            proc.kill()
        rt.stop_prefect_server(existing_home)
