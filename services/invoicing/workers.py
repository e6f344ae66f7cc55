"""Worker processes that price an invoice run's batches, on the run's own snapshot.

A full month end is bound by Python: reading millions of usage and metric rows into
windows and pricing millions of lines on one core (bench/README.md, "Invoice run"). The
run's transaction stays the one writer: it exports its snapshot (`pg_export_snapshot()`),
each worker opens its own READ ONLY transaction on that snapshot (so it reads exactly
what the run reads, whatever commits meanwhile), prices its share of the batches
(`batches.read_and_price_batch`) and sends back the COPY text of the lines, the heads and
the tenants it could not price. The run's connection COPYs the text in batch order: the
rows, their order and so their ids are those of a serial run.

NOTE: the decisions.
- A worker is a fresh interpreter (`python -m services.invoicing.pricing_worker`, one
  socket to it), not a fork and not multiprocessing's spawn: the run may be inside a
  Prefect flow with threads of its own (forking a threaded process can deadlock the child
  on a lock another thread held), and spawn would re-import the caller's main module (a
  script without a main guard would run again). The database URL goes over the socket,
  never on a command line another user could read.
- Batch i goes to worker i mod n, and the parent reads results in batch order, so the
  order is deterministic; a reader thread keeps at most `_AHEAD` priced batches in
  memory while the run's connection writes, so the workers and the server work together.
- A worker that fails sends its error and stops; a worker that dies (killed, out of
  memory) is seen as its socket closing; either fails the run, which rolls back. If the
  run's process dies, the workers see their socket close and exit; their read-only
  transactions end with their connections.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import sqlalchemy as sa

from models.period import BillingPeriod
from services.invoicing import batches
from services.invoicing.batches import Batch, PricedBatch, window_rows
from services.invoicing.catalog import WindowRow
from tallyflow.core.settings import Settings
from tallyflow.core.sqlfiles import sql

# Priced batches the reader thread may hold while the run writes (about 10 MB each).
_AHEAD = 4
_WORKER = "services.invoicing.pricing_worker"
# A snapshot id as pg_export_snapshot() returns it (it is inlined into SET TRANSACTION).
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


# NOTE: each worker holds a database connection for the run; past 8 cores the writer (one
# connection, one COPY at a time) is the bound, and a default should not take a small
# server's connections. More is a setting away.
DEFAULT_MAX = 8


@dataclass(frozen=True)
class Parallelism:
    """How an invoice run prices: `processes` workers once it has `min_tenants` tenants."""

    processes: int = 1
    min_tenants: int = 20_000

    @classmethod
    def of(cls, settings: Settings) -> Parallelism:
        """From the settings (`invoice_workers` 0: one per CPU core, at most `DEFAULT_MAX`)."""
        return cls(
            settings.invoice_workers or min(os.cpu_count() or 1, DEFAULT_MAX),
            settings.invoice_parallel_min_tenants,
        )

    def workers_for(self, tenants: int) -> int:
        """Worker processes for a run of `tenants` tenants (0: price in the run's process)."""
        if self.processes < 2 or tenants < max(1, self.min_tenants):
            return 0
        return min(self.processes, -(-tenants // batches.COPY_TENANTS))  # a batch or more each


SERIAL = Parallelism(processes=1)


class WorkerFailed(RuntimeError):
    """A pricing worker failed or died; the run rolls back."""


class PricingWorkers:
    """`count` worker processes on the snapshot `snapshot` of the database at `url`."""

    def __init__(self, count: int, url: str, snapshot: str, period: BillingPeriod) -> None:
        if not _SNAPSHOT_ID.match(snapshot):
            raise ValueError(f"not a snapshot id: {snapshot!r}")
        self._stop = threading.Event()
        self._pipes: list[Connection] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        # NOTE: the workers find our packages where this process found them
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            for _ in range(count):
                mine, theirs = socket.socketpair()
                with theirs:
                    self._processes.append(
                        subprocess.Popen(
                            [sys.executable, "-m", _WORKER, str(theirs.fileno())],
                            pass_fds=(theirs.fileno(),),
                            stdin=subprocess.DEVNULL,
                            env=env,
                        )
                    )
                pipe = Connection(mine.detach())
                self._pipes.append(pipe)
                pipe.send((url, snapshot, period))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> PricingWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def price(
        self, batches: Sequence[Batch], windows: Mapping[str, Sequence[WindowRow]]
    ) -> Iterator[PricedBatch]:
        """The batches priced, in their order."""
        count = len(self._pipes)
        results: queue.Queue[PricedBatch | BaseException] = queue.Queue(maxsize=_AHEAD)
        stop = self._stop

        def put(item: PricedBatch | BaseException) -> bool:
            while not stop.is_set():
                try:
                    results.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for n, pipe in enumerate(self._pipes):
                    try:
                        pipe.send([(b, window_rows(windows, b.tenants)) for b in batches[n::count]])
                    except OSError:  # it stopped: what it said (its error) or how it ended
                        self._receive(n)
                        raise
                for i in range(len(batches)):
                    if not put(self._receive(i % count)):
                        return
            except BaseException as exc:  # NOTE: handed to the run, which raises it
                put(exc)

        reader = threading.Thread(target=read, name="tallyflow-invoice-reader", daemon=True)
        reader.start()
        try:
            for _ in batches:
                item = results.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # NOTE: the reader may be blocked in recv: closing the pipes ends it
            self.close()
            reader.join(timeout=5)

    def _receive(self, n: int) -> PricedBatch:
        try:
            kind, payload = self._pipes[n].recv()
        except (EOFError, OSError) as exc:
            try:
                code: int | None = self._processes[n].wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            raise WorkerFailed(f"invoice pricing worker {n} exited (exit code {code})") from exc
        if kind == "error":
            raise WorkerFailed(f"invoice pricing worker {n} failed: {payload}")
        assert isinstance(payload, PricedBatch)
        return payload

    def close(self) -> None:
        """Stop the workers (closing a socket ends its worker; stragglers are killed)."""
        self._stop.set()
        for pipe in self._pipes:
            _shut_down(pipe)
            pipe.close()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._pipes.clear()
        self._processes.clear()


def _shut_down(pipe: Connection) -> None:
    """Shut the socket down: a thread blocked reading it returns at once (EOF), and the
    worker sees it closed (a plain close would leave the reader blocked)."""
    if pipe.closed:
        return
    sock = socket.socket(fileno=pipe.fileno())
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the worker
    finally:
        sock.detach()  # the Connection closes the descriptor


def export_snapshot(conn: sa.Connection) -> str:
    """The run's snapshot id, for the workers (valid while the run's transaction lasts)."""
    return str(conn.execute(sql("invoicing/export_snapshot")).scalar_one())
