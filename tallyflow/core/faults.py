"""Named crash points for the crash-safety tests (tests/reliability/).

The pipeline calls `crash_point("<name>")` at its step boundaries. With none of the
variables below set (production), a call is three dictionary lookups and returns.

- `TALLYFLOW_CRASH_AT=<name>` or `<name>@<n>`: at that point (its n-th hit, default the
  first) the process kills itself with SIGKILL: no exception handler, `finally` or atexit
  hook runs, exactly as when the machine or the OOM killer stops it.
- `TALLYFLOW_FAULT_DELAY_MS=<ms>`: sleep that long at every point whose name starts with
  `TALLYFLOW_FAULT_DELAY_AT` (default: every point), so that a kill sent from outside at
  a random time lands inside a step (lake write, Postgres load) rather than between runs.
- `TALLYFLOW_FAULT_PAUSE_AT=<name>` with `TALLYFLOW_FAULT_PAUSE_FILE=<path>`: at that point,
  wait until the file exists (a test sets up what must happen meanwhile, then creates it).
- `TALLYFLOW_FAULT_RAISE_AT=<name>=<MemoryError|OSError|RuntimeError>`: `raise_point(<name>)`
  raises that exception (a failure no real input can be made to cause on demand, such as
  running out of memory while reading one file).
- `TALLYFLOW_FAULT_TRACE=<file>`: append each point's name and the time (epoch seconds) to
  that file as it is reached, so a test can time an outside kill relative to the steps.

NOTE: stdlib only and cheap to import; it runs inside the pipeline's hot path only at
step boundaries (a few dozen calls per run).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Final

CRASH_AT: Final = "TALLYFLOW_CRASH_AT"
DELAY_MS: Final = "TALLYFLOW_FAULT_DELAY_MS"
DELAY_AT: Final = "TALLYFLOW_FAULT_DELAY_AT"
TRACE: Final = "TALLYFLOW_FAULT_TRACE"
PAUSE_AT: Final = "TALLYFLOW_FAULT_PAUSE_AT"
PAUSE_FILE: Final = "TALLYFLOW_FAULT_PAUSE_FILE"
RAISE_AT: Final = "TALLYFLOW_FAULT_RAISE_AT"
_RAISABLE: Final[dict[str, type[Exception]]] = {
    "MemoryError": MemoryError,
    "OSError": OSError,
    "RuntimeError": RuntimeError,
}

_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """A named step boundary: maybe trace it, sleep, or SIGKILL this process (see module doc)."""
    env = os.environ
    if CRASH_AT not in env and DELAY_MS not in env and TRACE not in env and PAUSE_AT not in env:
        return
    _hits[name] += 1
    trace = env.get(TRACE)
    if trace:
        fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)
    target = env.get(CRASH_AT)
    if target:
        point, _, nth = target.partition("@")
        if point == name and _hits[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
    if env.get(PAUSE_AT) == name and env.get(PAUSE_FILE):
        deadline = time.monotonic() + 600
        while not os.path.exists(env[PAUSE_FILE]) and time.monotonic() < deadline:
            time.sleep(0.02)
    delay = env.get(DELAY_MS)
    if delay and name.startswith(env.get(DELAY_AT, "")):
        time.sleep(int(delay) / 1000)


def raise_point(name: str) -> None:
    """A point where a test may make an exception happen (see module doc); else a no-op."""
    spec = os.environ.get(RAISE_AT)
    if not spec:
        return
    point, _, kind = spec.rpartition("=")
    if point == name and kind in _RAISABLE:
        raise _RAISABLE[kind](f"fault injected at {name}")
