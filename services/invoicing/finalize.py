"""Finalization (contract 5.1): refresh, then close, every draft of the periods past grace.

Late events keep arriving after a month ends, so the month-end run leaves drafts and
`finalize` closes them once `period_end + TALLYFLOW_INVOICE_GRACE_DAYS <= as_of`. Before
closing, each due period is re-run (`generate_invoices`): drafts are refreshed from the
usage of now, and closed invoices whose usage changed since their close get their
correction, which is closed with the rest. Late usage beyond the grace period therefore
lands on an adjustment (or a credit note), never on the closed invoice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from models.period import BillingPeriod
from services.invoicing.generation import (
    GenerationResult,
    generate_invoices,
    invoice_run_transaction,
)
from services.invoicing.lifecycle import DEFAULT_NUMBERING, close_period_invoices
from services.invoicing.numbering import NumberingRule
from services.invoicing.workers import SERIAL, Parallelism
from tallyflow.core.sqlfiles import sql


@dataclass(frozen=True)
class FinalizeResult:
    as_of: dt.date
    periods: tuple[BillingPeriod, ...]
    closed: int
    invoice_ids: tuple[int, ...]
    runs: tuple[GenerationResult, ...]

    @property
    def unpriceable(self) -> dict[str, str]:
        """`period/tenant` -> reason, for tenants no run of the finalize could price."""
        return {f"{r.period}/{t}": why for r in self.runs for t, why in r.unpriceable.items()}


def due_periods(conn: sa.Connection, *, as_of: dt.date, grace_days: int) -> list[BillingPeriod]:
    """Periods with drafts (or late usage after their close) whose grace days are over."""
    rows = conn.execute(
        sql("invoicing/select_periods_due_for_finalize"),
        {"as_of": as_of, "grace_days": grace_days},
    ).all()
    return [BillingPeriod(r.period_start, r.period_end) for r in rows]


def finalize_periods(
    conn: sa.Connection,
    periods: Sequence[BillingPeriod],
    *,
    as_of: dt.date,
    now: dt.datetime,
    numbering: NumberingRule = DEFAULT_NUMBERING,
    run_id: uuid.UUID | None = None,
    parallel: Parallelism = SERIAL,
) -> FinalizeResult:
    """Refresh, then close, every draft of `periods`, in the caller's one transaction."""
    runs: list[GenerationResult] = []
    closed: list[int] = []
    for period in sorted(periods):
        runs.append(
            generate_invoices(
                conn, period, run_id=run_id, now=now, numbering=numbering, parallel=parallel
            )
        )
        closed += close_period_invoices(conn, period, now=now, numbering=numbering)
    return FinalizeResult(
        as_of=as_of,
        periods=tuple(sorted(periods)),
        closed=len(closed),
        invoice_ids=tuple(sorted(closed)),
        runs=tuple(runs),
    )


def finalize_invoices(
    engine: sa.Engine,
    *,
    as_of: dt.date,
    grace_days: int,
    now: dt.datetime,
    numbering: NumberingRule = DEFAULT_NUMBERING,
    run_id: uuid.UUID | None = None,
    parallel: Parallelism = SERIAL,
) -> FinalizeResult:
    """Finalize every due period in one transaction (one snapshot, periods locked).

    Safe to rerun: a second finalize finds no drafts left to close (and re-rates only
    periods whose usage changed since their last close).
    NOTE: the due periods are read first to know which periods to lock, then read again
    inside the locked snapshot; a period that became due in between waits for tomorrow.
    """
    with engine.connect() as conn:
        candidates = due_periods(conn, as_of=as_of, grace_days=grace_days)
    with invoice_run_transaction(engine, candidates) as conn:
        due = set(due_periods(conn, as_of=as_of, grace_days=grace_days)) & set(candidates)
        return finalize_periods(
            conn,
            sorted(due),
            as_of=as_of,
            now=now,
            numbering=numbering,
            run_id=run_id,
            parallel=parallel,
        )
