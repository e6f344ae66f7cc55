"""Start-up benchmark: a no-op `tallyflow ingest` beside `import prefect` + one trivial flow run.

    uv run python bench/startup_bench.py            # 5 runs of each, medians
    uv run python bench/startup_bench.py --runs 9

Both run as fresh processes against the same warm Prefect server and the same warm embedded
Postgres (started by this script under a temp TALLYFLOW_HOME before timing, stopped at the
end), so neither pays a server's start-up. The no-op ingest has an empty landing folder and
an empty inbox. Prints wall times (median, min), the difference, and whether either wrote
anything on stderr (a user sees it after every command: it must be empty).

Target (issue 12 item 4): the no-op ingest within 1 s of the trivial flow run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRIVIAL_FLOW = """
from prefect import flow

@flow
def trivial() -> int:
    return 1

trivial()
"""


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stderr


def _stray(stderr: str) -> str:
    """stderr lines other than Prefect's own run log lines (`HH:MM:SS.fff | LEVEL | ...`)."""
    stray = [ln for ln in stderr.splitlines() if ln.strip() and " | " not in ln[:30]]
    return "nothing else than Prefect's run log" if not stray else repr(stray[:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from tallyflow.core.db import database_url
    from tallyflow.core.settings import Settings
    from tallyflow.runtime.prefect_server import ensure_prefect_api, stop_prefect_server

    work = Path(tempfile.mkdtemp(prefix="tallyflow-startup-"))
    home = work / "home"
    (home / "landing").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLYFLOW_", "PREFECT_"))}
    env |= {"TALLYFLOW_HOME": str(home), "TALLYFLOW_ENV_FILE": ""}
    os.environ.update(env)
    settings = Settings(home=home, database_url=None)
    try:
        database_url(settings)  # the embedded Postgres, started once
        ensure_prefect_api(settings)  # the background server, started once
        for name in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED"):
            env[name] = os.environ[name]
        tallyflow = str(Path(sys.executable).with_name("tallyflow"))
        _time([tallyflow, "db", "upgrade"], env)
        contenders = {
            "import prefect + 1 trivial flow run": [sys.executable, "-c", TRIVIAL_FLOW],
            "tallyflow ingest (no-op)": [tallyflow, "ingest"],
        }
        for argv in contenders.values():  # warm-up: migrations, page cache, .pyc files
            _time(argv, env)
        results: dict[str, list[float]] = {name: [] for name in contenders}
        stderr: dict[str, str] = {}
        for _ in range(args.runs):
            for name, argv in contenders.items():
                seconds, err = _time(argv, env)
                results[name].append(seconds)
                stderr[name] = stderr.get(name, "") + err
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.runs} runs each")
        for name, times in results.items():
            print(
                f"  {name:<40} median {statistics.median(times):5.2f} s  min {min(times):5.2f} s"
                f"  stderr: {_stray(stderr[name])}"
            )
        names = list(contenders)
        gap = statistics.median(results[names[1]]) - statistics.median(results[names[0]])
        print(f"  difference (median): {gap:+.2f} s (target: within 1 s)")
    finally:
        stop_prefect_server(settings)
        pid_file = home / "pg" / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)
            for _ in range(100):
                if not pid_file.exists():
                    break
                time.sleep(0.1)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
