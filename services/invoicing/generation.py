"""The invoice run (contract 5, 5.2): create or refresh a period's drafts, write corrections.

`generate_invoices` computes the drafts of a period set-based: three SQL reads
(services.invoicing.catalog), pricing in Python over per-subscription totals
(`compute_invoice`, pure), then bulk writes: new drafts are opened in one statement and
their lines COPYed straight into invoice_lines while the next tenants are priced; existing
drafts get their lines COPYed to a staging table and only the lines that differ are
rewritten (a rerun over unchanged usage writes nothing). No per-tenant round trips for
drafts; one transaction, one advisory lock per period.

A tenant whose invoice of the period is closed is re-rated the same way, and the difference
against what was billed so far (the closed invoice plus its closed corrections) becomes one
draft correction (`services.invoicing.corrections`).

Every function takes a Connection and runs inside the caller's transaction;
`invoice_run_transaction` opens the one the run needs (a snapshot, locks).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from models.period import BillingPeriod
from services.invoicing.batches import (
    Batch,
    PricedBatch,
    Pricer,
    make_batches,
    price_batch,
    window_rows,
)
from services.invoicing.catalog import (
    WindowRow,
    load_billable_windows,
    load_catalog,
    prepare_run_reads,
    select_windows,
)
from services.invoicing.compute import DraftInvoice, MixedCurrencies
from services.invoicing.corrections import CorrectionSummary, write_corrections
from services.invoicing.lifecycle import DEFAULT_NUMBERING, close_period_invoices
from services.invoicing.numbering import NumberingRule
from services.invoicing.workers import SERIAL, Parallelism, PricingWorkers, export_snapshot
from tallyflow.core.db import driver_connection
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import sql

# NOTE: advisory lock (class, key) for invoice runs: class is fixed, key is YYYYMM, so runs
# of one period queue behind each other (the partial unique index on invoices is the
# last line of defence; the lock makes the second run see the first one's drafts).
INVOICE_LOCK_CLASS = 0x7446_0005
ZERO = Decimal(0)

# Reasons a tenant is skipped because its invoice cannot be priced (the CLI exits 1).
UNPRICEABLE = frozenset({"mixed_currencies", "amount_out_of_range", "pricing_failed"})


# ---------------------------------------------------------------------------------------
# The run's transaction: one snapshot, no interleaving with usage writes
# ---------------------------------------------------------------------------------------


def period_lock_key(period: BillingPeriod) -> int:
    return period.start.year * 100 + period.start.month


@contextlib.contextmanager
def invoice_run_transaction(
    engine: sa.Engine, periods: Sequence[BillingPeriod]
) -> Iterator[sa.Connection]:
    """One REPEATABLE READ transaction for an invoice run over `periods`.

    NOTE: why the locks come first, outside the transaction: a REPEATABLE READ snapshot
    is taken at the transaction's first statement, so a lock awaited inside it would
    leave the run reading the state from before the lock was granted. So, on the session:
    1. the usage-writes lock in *shared* mode (services.job_runs.USAGE_LOCK_KEY): an ingest
       or backfill holds it exclusively for its whole run, so an invoice run waits for a
       running backfill to finish, and a backfill waits for the invoice run; invoice runs
       do not block each other;
    2. the period locks (the same keys `generate_invoices` takes per transaction), so two
       runs of one period queue and the second one's snapshot sees the first one's drafts;
    then the transaction, whose reads all see one snapshot (usage, catalog, invoices).
    Session locks are released in `finally` (and by Postgres if the session dies).
    """
    from services.job_runs import USAGE_LOCK_KEY  # NOTE: a constant; tasks/ imports no Prefect here

    keys = sorted({period_lock_key(p) for p in periods})
    with engine.connect() as conn:
        conn.execute(sql("invoicing/lock_usage_writes_shared"), {"key": USAGE_LOCK_KEY})
        for key in keys:
            conn.execute(
                sql("invoicing/lock_billing_period_session"),
                {"lock_class": INVOICE_LOCK_CLASS, "period_key": key},
            )
        conn.commit()
        try:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
        finally:
            conn = conn.execution_options(isolation_level="READ COMMITTED")
            for key in keys:
                conn.execute(
                    sql("invoicing/unlock_billing_period_session"),
                    {"lock_class": INVOICE_LOCK_CLASS, "period_key": key},
                )
            conn.execute(sql("invoicing/unlock_usage_writes_shared"), {"key": USAGE_LOCK_KEY})
            conn.commit()


# ---------------------------------------------------------------------------------------
# The invoice run
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceSummary:
    invoice_id: int
    tenant_id: str
    currency: str
    total: Decimal


@dataclass(frozen=True)
class GenerationResult:
    """What an invoice run did.

    `generated`: drafts of the run (created, refreshed or already up to date);
    `updated`: those created or whose lines/total changed (0 on a rerun over unchanged
    usage); `skipped`: tenants left alone (reasons in `skipped_tenants`, messages in
    `skip_messages`); `corrections`: the draft corrections of closed invoices that the
    re-rating found different (created, refreshed or unchanged).
    """

    period: BillingPeriod
    generated: int
    updated: int
    skipped: int
    closed: int
    removed: int
    invoices: tuple[InvoiceSummary, ...]
    skipped_tenants: Mapping[str, str]  # tenant -> reason (mixed_currencies, ...)
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds per phase
    corrections: tuple[CorrectionSummary, ...] = ()
    skip_messages: Mapping[str, str] = field(default_factory=dict)
    workers: int = 0  # processes that priced the run's batches (0: the run's own)

    @property
    def invoice_ids(self) -> list[int]:
        return [inv.invoice_id for inv in self.invoices]

    @property
    def correction_ids(self) -> list[int]:
        return [c.invoice_id for c in self.corrections]

    @property
    def unpriceable(self) -> dict[str, str]:
        """Tenants skipped because their invoice could not be priced."""
        return {t: r for t, r in self.skipped_tenants.items() if r in UNPRICEABLE}

    def totals_by_currency(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for inv in self.invoices:
            totals[inv.currency] += inv.total
        return dict(sorted(totals.items()))


def generate_invoices(
    conn: sa.Connection,
    period: BillingPeriod,
    *,
    tenant_ids: Sequence[str] | None = None,
    close: bool = False,
    run_id: uuid.UUID | None = None,
    now: dt.datetime | None = None,
    numbering: NumberingRule = DEFAULT_NUMBERING,
    parallel: Parallelism = SERIAL,
) -> GenerationResult:
    """Create or refresh the period's drafts and corrections (all tenants or `tenant_ids`).

    Safe to rerun: one draft per (tenant, period) is created or refreshed in place (only
    lines that changed are rewritten) in this one transaction, so a rerun yields the same
    drafts with the same ids. Closed and void invoices are never touched (a void one no
    longer blocks a fresh draft); a closed one may get one draft correction (5.2).
    Drafts of tenants that no longer have a subscription in the period, or that can no
    longer be priced, are removed (drafts were never issued). With `close`, every draft of
    the period (corrections included) is closed at `now`.
    """
    tenants = sorted(set(tenant_ids)) if tenant_ids is not None else None
    params = {
        "period_start": period.start,
        "period_end": period.end,
        "tenant_ids": tenants,
    }
    clock = _Clock()
    conn.execute(
        sql("invoicing/lock_billing_period"),
        {"lock_class": INVOICE_LOCK_CLASS, "period_key": period_lock_key(period)},
    )
    prepare_run_reads(conn)
    catalog = load_catalog(conn)
    live = {
        r.tenant_id: r for r in conn.execute(sql("invoicing/select_live_invoice_status"), params)
    }
    windows: dict[str, list[WindowRow]] = defaultdict(list)
    for row in select_windows(conn, params):
        windows[row.tenant_id].append(row)
    # NOTE: workers read the exported snapshot, which is what the run itself read only in
    # a REPEATABLE READ (or SERIALIZABLE) transaction (`invoice_run_transaction`).
    workers = parallel.workers_for(len(windows)) if _one_snapshot(conn) else 0
    snapshot = export_snapshot(conn) if workers else None
    # NOTE: in this process, every tenant's usage is read at once (three reads for the run);
    # the workers read theirs a batch at a time.
    pricer = (
        None
        if workers
        else Pricer(period, load_billable_windows(conn, params, catalog, window_rows(windows)))
    )
    clock.lap("read")
    crash_point("invoices.read")

    skipped: dict[str, str] = {}
    messages: dict[str, str] = {}
    candidates: list[tuple[str, str]] = []  # (tenant, currency) to price into drafts
    closed_invoices: dict[str, tuple[int, str]] = {}  # tenant -> (closed invoice, currency)
    for tenant_id in sorted(windows):
        currencies = {catalog[w.plan_id].currency for w in windows[tenant_id]}
        invoice = live.get(tenant_id)
        if len(currencies) > 1:
            skipped[tenant_id] = MixedCurrencies.code
            messages[tenant_id] = (
                f"tenant {tenant_id} has subscriptions in {', '.join(sorted(currencies))}"
                f" in {period}: one invoice has one currency"
            )
        elif invoice is not None and invoice.status == "closed":
            closed_invoices[tenant_id] = (int(invoice.id), str(invoice.currency))
        else:
            candidates.append((tenant_id, currencies.pop()))

    with contextlib.ExitStack() as stack:
        pool = None
        if snapshot is not None:
            # NOTE: started before the drafts are opened, so the workers' start-up
            # (imports, connection, snapshot, catalog) overlaps the run's own writes.
            url = conn.engine.url.render_as_string(hide_password=False)
            pool = stack.enter_context(PricingWorkers(workers, url, snapshot, period))
        drafts = _open_run_drafts(conn, params, run_id, candidates)
        for tenant_id, _ in candidates:
            if tenant_id not in drafts:  # closed by someone else since it was read
                skipped[tenant_id] = "invoice_closed"
        batches = make_batches(
            [(t, drafts[t][0]) for t, _ in candidates if t in drafts and drafts[t][1]],
            [t for t, _ in candidates if t in drafts and not drafts[t][1]],
        )
        priced: Iterable[PricedBatch]
        if pool is not None:
            priced = pool.price(batches, windows)
        else:
            assert pricer is not None
            serial = pricer
            priced = (price_batch(serial, b) for b in batches)
        # NOTE: the loaded windows are a few hundred thousand long-lived objects; freezing
        # them keeps Python's cyclic GC from rescanning them on every collection while
        # pricing allocates (and frees, by refcount) millions of short-lived ones.
        gc.freeze()
        try:
            heads, failed = _copy_batches(conn, batches, priced)
        finally:
            gc.unfreeze()
    clock.lap("price_and_stage")
    crash_point("invoices.staged")
    # NOTE: a tenant that could not be priced is absent from the staged heads, so its
    # draft (new or old) is removed below like a stale one: no wrong draft is left for
    # finalize to close.
    updated, removed = _finish_drafts(conn, {**params, "run_id": run_id}, heads)
    summaries = [
        InvoiceSummary(drafts[h.tenant_id][0], h.tenant_id, h.currency, h.total) for h in heads
    ]
    clock.lap("write")
    crash_point("invoices.written")
    rerate = sorted(closed_invoices)
    if pricer is None:
        pricer = Pricer(
            period,
            load_billable_windows(
                conn, {**params, "tenant_ids": rerate}, catalog, window_rows(windows, rerate)
            )
            if rerate
            else {},
        )
    rerated = {t: d for t in rerate if (d := pricer.one(t)) is not None}
    failed.update({t: pricer.failed[t] for t in rerate if t in pricer.failed})
    corrections, currency_changed = write_corrections(
        conn, period, closed_invoices, rerated, run_id=run_id
    )
    for tenant_id, message in currency_changed.items():
        skipped[tenant_id] = "currency_changed"
        messages[tenant_id] = message
    for tenant_id, (reason, message) in failed.items():
        skipped[tenant_id] = reason
        messages[tenant_id] = message
    clock.lap("corrections")
    crash_point("invoices.corrections")
    closed = 0
    if close:
        closed = len(
            close_period_invoices(conn, period, tenant_ids=tenants, now=now, numbering=numbering)
        )
        clock.lap("close")
        crash_point("invoices.closed")
    return GenerationResult(
        period=period,
        generated=len(summaries),
        updated=updated,
        skipped=len(skipped),
        closed=closed,
        removed=removed,
        invoices=tuple(summaries),
        skipped_tenants=dict(sorted(skipped.items())),
        timings=clock.laps,
        corrections=tuple(corrections),
        skip_messages=dict(sorted(messages.items())),
        workers=workers,
    )


def _one_snapshot(conn: sa.Connection) -> bool:
    """Whether every read of this transaction sees one snapshot (its first statement's)."""
    return conn.get_isolation_level() in ("REPEATABLE READ", "SERIALIZABLE")


class _Clock:
    """Seconds per phase of a run (reported in the job run's summary and the benchmark)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _open_run_drafts(
    conn: sa.Connection,
    params: Mapping[str, Any],
    run_id: uuid.UUID | None,
    candidates: Sequence[tuple[str, str]],
) -> dict[str, tuple[int, bool]]:
    """The draft of every candidate tenant, locked: tenant -> (invoice id, created now).

    A tenant without a live invoice gets a new draft (its total is filled in once priced);
    existing drafts are locked FOR UPDATE, so nobody closes them under this run. A tenant
    whose invoice is closed (even if closed since it was read) gets none.
    """
    conn.execute(sql("invoicing/drop_invoice_run_stages"))
    conn.execute(sql("invoicing/create_invoice_stage"))
    conn.execute(sql("invoicing/create_invoice_line_stage"))
    conn.execute(sql("invoicing/create_invoice_run_drafts"))
    with (
        driver_connection(conn).cursor() as cur,
        cur.copy("COPY invoice_stage (tenant_id, currency, total) FROM STDIN") as copy,
    ):
        for tenant_id, currency in candidates:
            copy.write_row((tenant_id, currency, ZERO))
    estimate = float(conn.execute(sql("invoicing/count_invoices_estimate")).scalar_one())
    opened = conn.execute(sql("invoicing/insert_new_draft_invoices"), {**params, "run_id": run_id})
    # NOTE: the lines' foreign-key checks (and the freeze trigger) are planned from the
    # statistics of `invoices`; when this run more than doubles the table (the first month
    # end of an install, a large backfill), plans made for a near-empty table pick a
    # sequential scan per line: quadratic (a 20,000-tenant first run spent 400 s of
    # Postgres CPU there). ANALYZE counts this transaction's own new rows and invalidates
    # those plans. It holds a SHARE UPDATE EXCLUSIVE lock to the end of the run, so it is
    # done only when the table grows that much, not on every run.
    if opened.rowcount > max(1000.0, estimate):
        conn.execute(sql("invoicing/analyze_invoices"))
    conn.execute(sql("invoicing/lock_run_draft_invoices"), params)
    return {
        r.tenant_id: (r.invoice_id, r.is_new)
        for r in conn.execute(sql("invoicing/select_run_drafts")).all()
    }


def _copy_batches(
    conn: sa.Connection, batches: Sequence[Batch], priced: Iterable[PricedBatch]
) -> tuple[list[DraftInvoice], dict[str, tuple[str, str]]]:
    """COPY each priced batch's lines, one statement a batch; returns the heads and failures.

    A new draft's lines go straight into invoice_lines; a refreshed draft's into the
    staging table, to be compared with the lines it holds (`_finish_drafts`).
    NOTE: a thread writes each batch while the next one is priced (here, or received from
    the workers), so pricing and the server's inserts run side by side (the connection
    waits on the server with the GIL released). Nothing else uses the connection
    meanwhile: pricing in this process reads nothing.
    """
    heads: list[DraftInvoice] = []
    failed: dict[str, tuple[str, str]] = {}
    todo: queue.Queue[tuple[Batch, PricedBatch] | None] = queue.Queue(maxsize=2)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with driver_connection(conn).cursor() as cur:
                while (item := todo.get()) is not None:
                    batch, done = item
                    with cur.copy(f"COPY {batch.copy_target} FROM STDIN") as copy:
                        copy.write(done.text)
                        for head in done.heads:
                            heads.append(head)
                            crash_point("invoices.tenant_staged")
        except BaseException as exc:  # NOTE: raised by the run below
            errors.append(exc)
            while todo.get() is not None:  # the producer never blocks on a dead writer
                pass

    writer = threading.Thread(target=write, name="tallyflow-invoice-copy", daemon=True)
    writer.start()
    try:
        for batch, done in zip(batches, priced, strict=True):
            failed.update(done.failed)
            if errors:
                break
            if done.heads:
                todo.put((batch, done))
    finally:
        todo.put(None)
        writer.join()
    if errors:
        raise errors[0]
    return heads, failed


def _finish_drafts(
    conn: sa.Connection, params: Mapping[str, Any], heads: Sequence[DraftInvoice]
) -> tuple[int, int]:
    """Sync refreshed drafts' lines, write every total, drop stale drafts.

    Returns (drafts created or changed, stale drafts removed).

    NOTE: why a rerun is safe and cheap: a draft that existed before this run only loses
    the lines the new pricing does not reproduce identically and gains the missing ones;
    a rerun over unchanged usage writes nothing and keeps every id. New drafts were
    inserted ON CONFLICT DO NOTHING against the partial unique index (one non-void
    invoice per tenant and period). All of it is in the caller's one transaction.
    """
    conn.execute(sql("invoicing/truncate_invoice_stage"))
    with (
        driver_connection(conn).cursor() as cur,
        cur.copy("COPY invoice_stage (tenant_id, currency, total) FROM STDIN") as copy,
    ):
        for h in heads:
            copy.write_row((h.tenant_id, h.currency, h.total))
    conn.execute(sql("invoicing/delete_changed_draft_lines"))
    conn.execute(sql("invoicing/insert_missing_draft_lines"))
    updated = int(conn.execute(sql("invoicing/update_changed_draft_invoices"), params).scalar_one())
    removed = conn.execute(sql("invoicing/delete_stale_draft_invoices"), params).rowcount
    return updated, removed
