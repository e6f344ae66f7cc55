"""`tallyflow prefect-server status|stop` and `up --help` stay cheap: no Prefect import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CODE = """
import json, sys
from typer.testing import CliRunner
from tallyflow.cli.app import app
runner = CliRunner()
status = runner.invoke(app, ["prefect-server", "status"])
stop = runner.invoke(app, ["prefect-server", "stop"])
helped = runner.invoke(app, ["up", "--help"])
print(json.dumps({
    "status": status.stdout, "status_code": status.exit_code,
    "stop_code": stop.exit_code, "stop_err": stop.stderr,
    "help_code": helped.exit_code, "help": helped.stdout,
    "prefect_modules": sorted(m for m in sys.modules if m.split(".")[0] == "prefect"),
}))
"""


def test_status_and_stop_without_a_server_and_without_importing_prefect(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["TALLYFLOW_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["prefect_modules"] == []
    assert out["status_code"] == 0
    status = json.loads(out["status"])
    assert status["running"] is False and status["state"] == "stopped"
    assert status["prefect_home"] == str(tmp_path / "home" / "prefect")
    assert out["stop_code"] == 0 and "not running" in out["stop_err"]
    assert out["help_code"] == 0
    for flag in ("--prefect-port", "--api-port", "--no-api"):
        assert flag in out["help"]
