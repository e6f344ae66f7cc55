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

from tallyflow.core.settings import Settings
from tallyflow.runtime import prefect_server as rt

pytestmark = pytest.mark.slow


def _get(url: str, body: dict[str, object] | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def _wait_until_up(proc: subprocess.Popen[bytes], prefect: str, api: str) -> list[str]:
    deadline = time.monotonic() + 180
    last: Exception | None = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "tallyflow up exited early"
        try:
            names = _get(f"{prefect}/deployments/filter", {})
            _get(f"{api}/openapi.json")
            assert isinstance(names, list)
            if len(names) == 4:
                return sorted(d["name"] for d in names)
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(1)
    raise AssertionError(f"tallyflow up did not come up: {last}")


def test_up_serves_everything_and_ctrl_c_stops_it_all(settings: Settings, tmp_path: Path) -> None:
    prefect_port, api_port = rt._free_port(), rt._free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    command = [sys.executable, "-m", "tallyflow.cli", "up"]
    command += ["--prefect-port", str(prefect_port), "--api-port", str(api_port)]
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    descendants: list[psutil.Process] = []
    try:
        names = _wait_until_up(proc, rt.api_url_for(prefect_port), f"http://127.0.0.1:{api_port}")
        assert names == ["intraday-usage", "month-end-invoices", "nightly-usage", "usage-backfill"]
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
        while time.monotonic() < deadline and not (isinstance(names, list) and len(names) == 4):
            assert proc.poll() is None, "tallyflow up exited early"
            time.sleep(1)
            names = _get(f"{existing.url}/deployments/filter", {})
        assert isinstance(names, list) and len(names) == 4
        assert rt.read_state(settings) is None  # no server of its own
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert rt.is_healthy(existing.url)  # not ours to stop
    finally:
        if proc.poll() is None:
            proc.kill()
        rt.stop_prefect_server(existing_home)
