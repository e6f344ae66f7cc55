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
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness

ROOT = _harness.ROOT
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
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="Keep PYTHONDONTWRITEBYTECODE for the timed commands (each then recompiles"
        " the project's modules)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tallyflow-startup-"))
    home = work / "home"
    (home / "landing").mkdir(parents=True)
    _harness.use_home(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    if not args.no_bytecode_cache:
        # NOTE: as a user's shell runs them: with PYTHONDONTWRITEBYTECODE set (this sandbox
        # sets it), the project's own modules (editable install) are compiled again by every
        # command, which the trivial script does not pay.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(
        f"{_harness.utc_stamp()}, commit {_harness.commit()}, load average "
        f"{_harness.load_average()} (start)"
    )
    try:
        _harness.start_embedded_postgres(home)  # started once
        with _harness.prefect_server(home) as prefect_env:  # the background server, once
            env |= prefect_env
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
        print(
            f"{_harness.utc_stamp()}, load average {_harness.load_average()} (end); "
            f"{args.runs} runs each; bytecode cache "
            f"{'off' if 'PYTHONDONTWRITEBYTECODE' in env else 'on'}"
        )
        for name, times in results.items():
            print(
                f"  {name:<40} median {statistics.median(times):5.2f} s  min {min(times):5.2f} s"
                f"  stderr: {_stray(stderr[name])}"
            )
        names = list(contenders)
        gap = statistics.median(results[names[1]]) - statistics.median(results[names[0]])
        print(f"  difference (median): {gap:+.2f} s (target: within 1 s)")
    finally:
        _harness.stop_embedded_postgres(home)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
