"""One pricing worker of a large invoice run: `python -m services.invoicing.pricing_worker FD`.

Started by `services.invoicing.workers.PricingWorkers`, which holds the other end of the
socket FD. It receives (database URL, snapshot id, period) first, opens a READ ONLY
REPEATABLE READ transaction on the run's exported snapshot, then prices the batches it is
sent (`batches.read_and_price_batch`) and sends each one back. It reports an error as
("error", text) and exits; a closed socket means the run is over (or gone): it exits too.

NOTE: a module of its own, imported by nothing: `python -m` runs it as `__main__`, and a
module the package imports would then be loaded twice (and Python warns about it).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from multiprocessing.connection import Connection

import sqlalchemy as sa

from models.period import BillingPeriod
from services.invoicing.batches import read_and_price_batch
from services.invoicing.catalog import load_catalog, prepare_run_reads
from tallyflow.core.sqlfiles import sql


def serve(pipe: Connection, url: str, snapshot: str, period: BillingPeriod) -> None:
    """Import the run's snapshot, then price the batches sent on `pipe` until it closes."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            with conn.begin():
                # NOTE: SET TRANSACTION takes no bind parameter; the run checked the id's
                # form (workers._SNAPSHOT_ID) before sending it.
                statement = sql("invoicing/set_transaction_snapshot").text
                conn.exec_driver_sql(statement.replace("{snapshot}", snapshot))
                prepare_run_reads(conn)
                catalog = load_catalog(conn)
                work = pipe.recv()
                for batch, windows in work:
                    priced = read_and_price_batch(conn, period, catalog, windows, batch)
                    pipe.send(("batch", priced))
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    pipe = Connection(int(argv[1]))
    try:
        url, snapshot, period = pipe.recv()
        serve(pipe, url, snapshot, period)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return 0  # the run is over or gone: nobody to report to
    except BaseException as exc:
        with contextlib.suppress(OSError):
            pipe.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        return 1
    finally:
        pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
