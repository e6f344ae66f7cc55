"""Where flow runs report to: PREFECT_API_URL, or a Prefect server kept alive in the background.

Without PREFECT_API_URL, every Prefect flow call starts a throwaway server (10-25 s here).
CLI commands that run flows call `ensure_prefect_api(settings)` first, before importing
Prefect: it reuses a server started once, detached, under TALLYFLOW_HOME/prefect (SQLite),
and points this process at it.

Files under TALLYFLOW_HOME/prefect:
- `server.json`  pid, port and URL of the running server (may be stale: always health-checked)
- `server.lock`  flock taken while starting or stopping, so two commands never start two
- `server.log`   the server's output

NOTE: this module must stay cheap to import (stdlib only): it runs before Prefect is imported.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tallyflow.core.settings import Settings

DEFAULT_PORT = 4200
HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
EPHEMERAL = "ephemeral"

# NOTE: Popen objects of servers this process started; kept so they are not garbage
# collected (and warned about) while the detached server is still running.
_children: list[subprocess.Popen[bytes]] = []


class PrefectServerError(RuntimeError):
    """The background Prefect server could not be started."""

    code = "prefect_server_unavailable"


@dataclass(frozen=True)
class ServerInfo:
    """A Prefect server process recorded in `server.json`."""

    pid: int
    port: int
    url: str
    owner: str
    started_at: str
    log: str


def server_dir(settings: Settings) -> Path:
    return settings.prefect_home


def _state_file(settings: Settings) -> Path:
    return server_dir(settings) / "server.json"


def _lock_file(settings: Settings) -> Path:
    return server_dir(settings) / "server.lock"


def log_file(settings: Settings) -> Path:
    return server_dir(settings) / "server.log"


def api_url_for(port: int) -> str:
    return f"http://{HOST}:{port}/api"


def ensure_prefect_api(settings: Settings) -> str:
    """Return the Prefect API URL flow runs of this process report to, starting a server if needed.

    PREFECT_API_URL (or an API URL already active in an imported Prefect, e.g. the test
    harness) wins; otherwise the background server under TALLYFLOW_HOME/prefect is reused,
    or started detached on first use. Sets PREFECT_API_URL, PREFECT_HOME and
    PREFECT_SERVER_ANALYTICS_ENABLED in os.environ. Under pytest without an API URL it
    returns EPHEMERAL and starts nothing (Prefect then uses a throwaway server).
    """
    configured = configured_api_url()
    if configured:
        return configured
    if os.environ.get("PYTEST_CURRENT_TEST"):
        # NOTE: a test that runs a flow command without the Prefect harness must not leave a
        # server running behind it: Prefect's own throwaway server is used (and stopped).
        return EPHEMERAL
    info = ensure_background_server(settings)
    export_prefect_env(settings, info.url)
    return info.url


def configured_api_url() -> str | None:
    """The API URL set by the user or by an already imported Prefect's settings context."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    if "prefect" in sys.modules:
        from prefect.settings import get_current_settings

        current = get_current_settings().api.url
        if current:
            return str(current)
    return None


def export_prefect_env(settings: Settings, url: str) -> None:
    """Point this process (and its children) at the server at `url`."""
    os.environ["PREFECT_API_URL"] = url
    os.environ["PREFECT_HOME"] = str(server_dir(settings))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    if "prefect.context" in sys.modules:
        # NOTE: Prefect snapshots the environment into its settings at import; refresh it.
        import prefect.context

        prefect.context.refresh_global_settings_context()


def ensure_background_server(
    settings: Settings, *, port: int | None = None, timeout: float = START_TIMEOUT_S
) -> ServerInfo:
    """The healthy server recorded under TALLYFLOW_HOME/prefect, started detached if needed.

    `port`: None prefers 4200 (falls back to a free port when taken), 0 any free port.
    """
    info = running_server(settings)
    if info is not None:
        return info
    with server_lock(settings):
        # NOTE: checked again under the lock: a racing command may have started it meanwhile.
        info = running_server(settings)
        if info is not None:
            return info
        discard_stale(settings)
        info, _ = start_server(settings, port=port, owner="background", timeout=timeout)
        return info


def running_server(settings: Settings) -> ServerInfo | None:
    """The recorded server if its process is alive and it answers /api/health, else None."""
    info = read_state(settings)
    if info is None or not pid_alive(info.pid):
        return None
    return info if is_healthy(info.url) else None


def read_state(settings: Settings) -> ServerInfo | None:
    try:
        data = json.loads(_state_file(settings).read_text())
        return ServerInfo(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _write_state(settings: Settings, info: ServerInfo) -> None:
    path = _state_file(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(info)))
    tmp.replace(path)


def _remove_state(settings: Settings, pid: int | None = None) -> None:
    """Remove server.json (only if it still records `pid`, when given)."""
    info = read_state(settings)
    if pid is not None and info is not None and info.pid != pid:
        return
    _state_file(settings).unlink(missing_ok=True)


def discard_stale(settings: Settings) -> None:
    """Forget a recorded server that is dead or does not answer (killing a hung one)."""
    info = read_state(settings)
    if info is None:
        return
    if pid_alive(info.pid):
        _terminate_group(info.pid, STOP_TIMEOUT_S)
    _remove_state(settings)


def start_server(
    settings: Settings,
    *,
    port: int | None,
    owner: str,
    timeout: float = START_TIMEOUT_S,
    die_with_parent: bool = False,
) -> tuple[ServerInfo, subprocess.Popen[bytes]]:
    """Start `prefect server start` detached (own session and process group), wait until healthy.

    The caller holds the lock (or owns the server, as `tallyflow up` does). The state file
    is written before waiting, so a server whose starter dies is still found and stopped.
    """
    home = server_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    chosen = _choose_port(port)
    url = api_url_for(chosen)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_API_URL=url,
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        PREFECT_SERVER_LOGGING_LEVEL=env.get("PREFECT_SERVER_LOGGING_LEVEL", "WARNING"),
    )
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", HOST, "--port", str(chosen)]
    log_path = log_file(settings)
    with open(log_path, "ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"\n--- {stamp} starting Prefect server on {url} ({owner})\n".encode())
        log.flush()
        proc = subprocess.Popen(
            command,
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent_hook() if die_with_parent else None,
        )
    _children.append(proc)
    info = ServerInfo(
        pid=proc.pid,
        port=chosen,
        url=url,
        owner=owner,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        log=str(log_path),
    )
    _write_state(settings, info)
    deadline = time.monotonic() + timeout
    while not is_healthy(url):
        if proc.poll() is not None:
            _remove_state(settings, proc.pid)
            raise PrefectServerError(
                f"Prefect server exited with code {proc.returncode} before answering; "
                f"last lines of {log_path}:\n{_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            _terminate_group(proc.pid, STOP_TIMEOUT_S)
            _remove_state(settings, proc.pid)
            raise PrefectServerError(
                f"Prefect server did not answer on {url} within {timeout:.0f} s; see {log_path}"
            )
        time.sleep(0.2)
    return info, proc


def stop_prefect_server(settings: Settings, *, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the server recorded under TALLYFLOW_HOME/prefect. True if one was running."""
    with server_lock(settings):
        return stop_prefect_server_locked(settings, timeout=timeout)


def stop_prefect_server_locked(settings: Settings, *, timeout: float = STOP_TIMEOUT_S) -> bool:
    """`stop_prefect_server` for a caller already holding `server_lock`."""
    info = read_state(settings)
    if info is None:
        return False
    was_alive = pid_alive(info.pid)
    if was_alive:
        _terminate_group(info.pid, timeout)
    _remove_state(settings)
    return was_alive


def server_status(settings: Settings) -> dict[str, object]:
    """What `tallyflow prefect-server status` prints."""
    configured = os.environ.get("PREFECT_API_URL")
    info = read_state(settings)
    alive = info is not None and pid_alive(info.pid)
    healthy = alive and info is not None and is_healthy(info.url)
    status: dict[str, object] = {
        "running": healthy,
        "state": "running" if healthy else ("unhealthy" if alive else "stopped"),
        "prefect_home": str(server_dir(settings)),
        "log": str(log_file(settings)),
    }
    if info is not None and alive:
        status.update(pid=info.pid, url=info.url, owner=info.owner, started_at=info.started_at)
        status["ui"] = info.url.removesuffix("/api")
    if configured:
        status["PREFECT_API_URL"] = configured
    return status


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True when GET {url}/health answers 200."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def pid_alive(pid: int) -> bool:
    """True when process `pid` exists and is not a zombie."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # NOTE: the state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _reap(pid: int) -> None:
    """Collect `pid` if it is a server this process started and it exited (no zombie left)."""
    for proc in _children:
        if proc.pid == pid:
            proc.poll()


def _terminate_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL it after `timeout` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid) and not _group_alive(pid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _choose_port(port: int | None) -> int:
    if port is None:
        return DEFAULT_PORT if port_free(DEFAULT_PORT) else _free_port()
    if port == 0:
        return _free_port()
    if not port_free(port):
        raise PrefectServerError(f"port {port} on {HOST} is already in use")
    return port


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server_lock(settings: Settings) -> Iterator[None]:
    """An exclusive flock on server.lock (released by the OS if this process dies)."""
    home = server_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    with open(_lock_file(settings), "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGTERM when its parent dies (Linux), else None.

    NOTE: `tallyflow up` starts its children in their own process groups (so Ctrl-C reaches
    only the supervisor, which stops them in order); this covers the supervisor being killed.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
