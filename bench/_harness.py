"""What the ingest benches share: a scrubbed environment, the embedded Postgres of a home,
the warm Prefect server, and the run's header (commit, load average).

    from bench import _harness   (or `import _harness` from a script in bench/)

Used by ingest_bench.py, history_bench.py and startup_bench.py, so each starts and stops
the same servers the same way and no timed phase pays their start-up; the database benches
(invoice_run_bench.py, invoice_lines_floor.py, preview_bench.py, quota_check_bench.py) take
their throwaway Postgres from `throwaway_postgres`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scrubbed_env(home: Path, **extra: str) -> dict[str, str]:
    """os.environ without TALLYFLOW_* (a developer's .env or lake must not leak in), with
    TALLYFLOW_HOME = home and Prefect's analytics off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFLOW_")}
    env |= {
        "TALLYFLOW_HOME": str(home),
        "TALLYFLOW_ENV_FILE": "",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    return env | extra


def use_home(home: Path) -> None:
    """Point this process at `home` (TALLYFLOW_* scrubbed, as `scrubbed_env`)."""
    for name in [k for k in os.environ if k.startswith("TALLYFLOW_")]:
        del os.environ[name]
    os.environ.update(scrubbed_env(home))


def start_embedded_postgres(home: Path) -> str:
    """Start (or reuse) the embedded Postgres under `home`; its SQLAlchemy URL."""
    from tallyflow.core.db import database_url
    from tallyflow.core.settings import Settings

    return database_url(Settings(home=home, database_url=None))


@contextlib.contextmanager
def throwaway_postgres(prefix: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh embedded Postgres in a new temporary folder, for one bench; its libpq URL.

    Deleted at the end; with `keep`, left running with its data (its folder is printed:
    stop its postmaster, then delete it)."""
    import shutil
    import tempfile
    import warnings

    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # the embedded server runs as its own user when we are root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(root / "pg", cleanup_mode=None if keep else "delete")
    try:
        yield str(server.get_uri())
    finally:
        if keep:
            print(f"kept the database in {root / 'pg'} (still running)", flush=True)
        else:
            server.cleanup()
            shutil.rmtree(root, ignore_errors=True)


def stop_embedded_postgres(home: Path) -> None:
    """Fast shutdown of the embedded Postgres under `home` (by its postmaster pid), if any."""
    pid_file = home / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError, IndexError, OSError):
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)
    for _ in range(100):
        if not pid_file.exists():
            return
        time.sleep(0.1)


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[dict[str, str]]:
    """A warm Prefect server for the whole bench: PREFECT_API_URL when set, else a
    background server under `home` (started here, stopped at the end). Yields the
    PREFECT_* variables a child process needs; they are set in os.environ too."""
    names = ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED")
    if os.environ.get("PREFECT_API_URL"):
        yield {n: os.environ[n] for n in names if n in os.environ}
        return
    from tallyflow.core.settings import Settings
    from tallyflow.runtime.prefect_server import ensure_prefect_api, stop_prefect_server

    settings = Settings(home=home, database_url=None)
    try:
        ensure_prefect_api(settings)
        yield {n: os.environ[n] for n in names}
    finally:
        stop_prefect_server(settings)
        for name in names:
            os.environ.pop(name, None)


@contextlib.contextmanager
def profiled(path: str | None) -> Iterator[None]:
    """A cProfile of the block written to `path` (one pstats file); nothing when None."""
    if path is None:
        yield
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)


def commit() -> str:
    """The short commit of the code under test (with `+dirty` when the tree has changes)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{head}+dirty" if dirty else head


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def utc_stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
