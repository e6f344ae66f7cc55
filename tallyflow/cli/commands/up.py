"""`tallyflow up`: Prefect server and UI, the deployments served on their schedules, the API.

One supervisor process, three children, each in its own process group:
1. the Prefect server (SQLite under TALLYFLOW_HOME/prefect), unless PREFECT_API_URL is set;
2. `python -m tallyflow.runtime.deployments`: `prefect.serve` of the deployments in prefect.yaml;
3. `uvicorn --factory api.app:create_app` (unless --no-api).
Ctrl-C (SIGINT) or SIGTERM stops them in reverse order; a child that dies stops the rest.

NOTE: this process never imports Prefect (the children do); it only supervises.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

import typer

STOP_TIMEOUT_S = 20.0


@dataclass
class Child:
    """A supervised process (leader of its own process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    stop_signal: signal.Signals = signal.SIGTERM

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """`stop_signal` to its process group, SIGKILL after `timeout`."""
        for sig in (self.stop_signal, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self.proc.poll()
                try:
                    os.killpg(self.proc.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)
            if sig != signal.SIGKILL:
                typer.echo(f"{self.name} did not stop in {timeout:.0f} s; killing it", err=True)


class Stop(Exception):
    """Raised by the signal handler to leave the supervision loop."""


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        prefect_port: int = typer.Option(4200, help="Port of the Prefect server and UI"),
        api_port: int = typer.Option(8000, help="Port of the tallyflow API"),
        host: str = typer.Option("127.0.0.1", help="Interface the API listens on"),
        no_api: bool = typer.Option(False, "--no-api", help="Do not start the API"),
    ) -> None:
        """Prefect server and UI, the deployments served on their schedules, and the API."""
        raise typer.Exit(
            run_up(prefect_port=prefect_port, api_port=api_port, host=host, api=not no_api)
        )


def run_up(*, prefect_port: int, api_port: int, host: str, api: bool) -> int:
    """Start everything, supervise until a signal or a child's death; return the exit code."""
    from tallyflow.core import migrate
    from tallyflow.core.db import get_engine
    from tallyflow.core.settings import load_settings
    from tallyflow.runtime import prefect_server as rt

    settings = load_settings()
    children: list[Child] = []
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    owned_server_pid: int | None = None
    try:
        migrate.upgrade(get_engine(settings))

        prefect_url = rt.configured_api_url()
        if prefect_url is None:
            typer.echo(f"starting the Prefect server on {rt.HOST}:{prefect_port} ...", err=True)
            with rt.server_lock(settings):
                info = rt.running_server(settings)
                if info is not None and info.port != prefect_port:
                    # NOTE: the background server of earlier commands, on another port:
                    # replace it, so CLI runs and the UI share one server while `up` runs.
                    rt.stop_prefect_server_locked(settings)
                    info = None
                if info is None:
                    rt.discard_stale(settings)
                    if not rt.port_free(prefect_port):
                        typer.echo(
                            f"error: port {prefect_port} is in use (another Prefect server?): "
                            "choose another with --prefect-port, or use that server with "
                            "PREFECT_API_URL=http://127.0.0.1:PORT/api",
                            err=True,
                        )
                        return 2
                    info, proc = rt.start_server(
                        settings, port=prefect_port, owner="up", die_with_parent=True
                    )
                    children.append(Child("Prefect server", proc))
                owned_server_pid = info.pid
            prefect_url = info.url
            rt.export_prefect_env(settings, prefect_url)
        ui_url = prefect_url.removesuffix("/api")

        # NOTE: SIGINT for prefect.serve: it pauses the schedules and exits cleanly (its
        # SIGTERM handler works too but warns about an un-awaited coroutine in Prefect 3.8).
        serve = [sys.executable, "-m", "tallyflow.runtime.deployments"]
        children.append(_spawn("deployments (prefect.serve)", serve, signal.SIGINT))
        if api:
            command = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app"]
            command += ["--host", host, "--port", str(api_port)]
            children.append(_spawn("API", command))

        typer.echo(
            "\ntallyflow is up\n"
            f"  Prefect UI   {ui_url}\n"
            + (f"  API          http://{host}:{api_port}  (docs: /docs)\n" if api else "")
            + "  deployments  nightly-usage, intraday-usage, month-end-invoices, usage-backfill\n"
            "Ctrl-C stops all of it.\n",
            err=True,
        )
        while True:
            for child in children:
                if not child.alive():
                    typer.echo(
                        f"{child.name} exited with code {child.proc.returncode}; stopping",
                        err=True,
                    )
                    return 1
            time.sleep(0.5)
    except Stop:
        typer.echo("\nstopping ...", err=True)
        return 0
    except rt.PrefectServerError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    finally:
        # NOTE: ignore further Ctrl-C while stopping, so the children are always reaped.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        for child in reversed(children):
            child.stop()
        if owned_server_pid is not None:
            # An adopted background server is not in `children`: stop it as well.
            rt.stop_prefect_server(settings)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        typer.echo("stopped", err=True)


def _spawn(name: str, command: list[str], stop_signal: signal.Signals = signal.SIGTERM) -> Child:
    from tallyflow.runtime.prefect_server import die_with_parent_hook

    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent_hook(),
    )
    return Child(name, proc, stop_signal)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)
