"""Invoicing (contract section 5): the invoice run and the invoice lifecycle.

One service shared by the HTTP API, the CLI and the `close_billing_period` flow:

- `generate_invoices` computes the drafts of a period set-based: three SQL reads
  (subscription windows, usage totals per window and metric, override days) over
  usage_daily and the catalog, pricing in Python over per-subscription totals
  (`compute_invoice`, pure), then bulk writes: new drafts are opened in one statement and
  their lines COPYed straight into invoice_lines while the next tenants are priced;
  existing drafts get their lines COPYed to a staging table and only the lines that
  differ are rewritten (a rerun over unchanged usage writes nothing). No per-tenant
  round trips; one transaction, one advisory lock per period.
- `close_invoice` / `void_invoice` / `close_period_invoices` move invoices through
  draft -> closed -> void. The database itself refuses changes to a closed invoice
  (migration 0003), so this module is not the only guard.

Every function takes a Connection and runs inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import gc
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

import orjson
import sqlalchemy as sa

from models.money import quantum, round_money
from models.pricing import PricingModel, pricing_from_row
from models.pricing.base import PRICING_CONTEXT
from services.commitment import TrueUp, commitment_true_up
from services.credits import apply_credits_at_close, apply_credits_to_period_drafts
from services.proration import (
    BillingPeriod,
    Window,
    billable_quantity,
    effective_included,
    prorate_base_fee,
)
from services.webhooks.outbox import EventType, emit_many, has_subscribers
from tallyflow.core.clock import utc_now
from tallyflow.core.db import driver_connection
from tallyflow.core.errors import Conflict, NotFound
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import sql

# NOTE: advisory lock (class, key) for invoice runs: class is fixed, key is YYYYMM, so runs
# of one period queue behind each other (the partial unique index on invoices is the
# last line of defence; the lock makes the second run see the first one's drafts).
INVOICE_LOCK_CLASS = 0x7446_0005
ZERO = Decimal(0)


# ---------------------------------------------------------------------------------------
# Inputs and outputs of the pure core
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaTerms:
    """One metric of a plan as it is billed."""

    metric: str
    aggregation: str  # sum | count | max
    included: Decimal
    pricing: PricingModel
    pricing_json: Mapping[str, Any]


@dataclass(frozen=True)
class PlanTerms:
    """A plan as it is billed: currency, monthly base fee and its metrics."""

    plan_id: int
    code: str
    name: str
    currency: str
    base_fee: Decimal
    quotas: tuple[QuotaTerms, ...]
    minimum_commitment: Decimal | None = None  # per month, prorated (contract 5b)


class UsageTotals(NamedTuple):
    """usage_daily summed over a subscription window for one metric."""

    quantity_sum: Decimal = ZERO
    event_count: Decimal = ZERO  # SUM(bigint) is NUMERIC in Postgres
    quantity_max: Decimal = ZERO

    def under(self, aggregation: str) -> Decimal:
        """The period usage under the plan's aggregation (count / max / sum)."""
        if aggregation == "count":
            return self.event_count
        if aggregation == "max":
            return self.quantity_max
        return self.quantity_sum


NO_USAGE = UsageTotals()


@dataclass(frozen=True)
class BillableWindow:
    """One subscription's days inside the period, with the usage attributed to them."""

    subscription_id: int
    plan: PlanTerms
    window: Window
    usage: Mapping[str, UsageTotals] = field(default_factory=dict)
    # metric -> [(included, days in force)] for overrides of `included`
    override_days: Mapping[str, Sequence[tuple[Decimal, int]]] = field(default_factory=dict)


class DraftLine(NamedTuple):
    """One priced invoice line (a NamedTuple: the run builds one per subscription metric)."""

    line_no: int
    kind: str  # base_fee | usage | commitment_true_up (credit lines are written at close)
    subscription_id: int
    plan_code: str
    metric: str | None
    description: str
    window_start: dt.date
    window_end: dt.date
    quantity: Decimal
    included: Decimal
    billable_quantity: Decimal
    pricing_model: str | None
    amount: Decimal  # rounded half-up to the currency's minor unit
    breakdown: Mapping[str, Any]


@dataclass(frozen=True)
class DraftInvoice:
    tenant_id: str
    currency: str
    total: Decimal  # the sum of the rounded lines
    lines: tuple[DraftLine, ...]


class MixedCurrencies(Conflict):
    """A tenant's subscriptions in one period are priced in different currencies."""

    code = "mixed_currencies"


# ---------------------------------------------------------------------------------------
# Pure core: one tenant's invoice from its billable windows
# ---------------------------------------------------------------------------------------


def compute_invoice(
    tenant_id: str, period: BillingPeriod, windows: Sequence[BillableWindow]
) -> DraftInvoice:
    """Price one tenant's period: a base_fee line per subscription, a usage line per metric.

    Each subscription applies its own allowance and tiers to the usage of its own days.
    Lines are rounded half-up to the minor unit; the total is the sum of rounded lines.
    Usage lines are kept at zero too (transparency: the reader sees what was counted).
    """
    currencies = sorted({w.plan.currency for w in windows})
    if len(currencies) != 1:
        raise MixedCurrencies(
            f"tenant {tenant_id} has subscriptions in {', '.join(currencies)} in {period}:"
            " one invoice has one currency"
        )
    currency = currencies[0]
    lines: list[DraftLine] = []
    for w in sorted(windows, key=lambda w: (w.window.start, w.subscription_id)):
        first = len(lines)
        lines.append(_base_fee_line(len(lines) + 1, w, period, currency))
        for quota in w.plan.quotas:
            lines.append(_usage_line(len(lines) + 1, w, quota, currency))
        # NOTE (contract 5b): a window below its plan's prorated minimum commitment gets a
        # commitment_true_up line for the gap (services/commitment.py holds the rule).
        true_up = commitment_true_up(
            w.plan.minimum_commitment,
            w.window,
            period,
            (li.amount for li in lines[first:]),
            currency,
        )
        if true_up is not None:
            lines.append(_true_up_line(len(lines) + 1, w, period, true_up))
    total = ZERO
    for line in lines:
        total = PRICING_CONTEXT.add(total, line.amount)
    total = total.quantize(quantum(currency), context=PRICING_CONTEXT)
    return DraftInvoice(tenant_id=tenant_id, currency=currency, total=total, lines=tuple(lines))


def _base_fee_line(
    line_no: int, w: BillableWindow, period: BillingPeriod, currency: str
) -> DraftLine:
    exact = prorate_base_fee(w.plan.base_fee, w.window, period)
    days = Decimal(w.window.days)
    return DraftLine(
        line_no=line_no,
        kind="base_fee",
        subscription_id=w.subscription_id,
        plan_code=w.plan.code,
        metric=None,
        description=(
            f"{w.plan.name} base fee, {w.window.days}/{period.days} days"
            f" ({w.window.start!s} to {w.window.end!s}, end exclusive)"
        ),
        window_start=w.window.start,
        window_end=w.window.end,
        quantity=days,
        included=ZERO,
        billable_quantity=days,
        pricing_model=None,
        amount=round_money(exact, currency),
        breakdown={
            "base_fee": str(w.plan.base_fee),
            "active_days": w.window.days,
            "days_in_period": period.days,
            "unrounded_amount": str(exact),
        },
    )


def _true_up_line(
    line_no: int, w: BillableWindow, period: BillingPeriod, true_up: TrueUp
) -> DraftLine:
    days = Decimal(w.window.days)
    return DraftLine(
        line_no=line_no,
        kind="commitment_true_up",
        subscription_id=w.subscription_id,
        plan_code=w.plan.code,
        metric=None,
        description=(
            f"{w.plan.name} minimum commitment {true_up.prorated!s} for"
            f" {w.window.days}/{period.days} days, {true_up.charged!s} charged: true-up"
        ),
        window_start=w.window.start,
        window_end=w.window.end,
        quantity=days,
        included=ZERO,
        billable_quantity=days,
        pricing_model=None,
        amount=true_up.amount,
        breakdown=true_up.breakdown(w.window, period),
    )


def _usage_line(line_no: int, w: BillableWindow, quota: QuotaTerms, currency: str) -> DraftLine:
    quantity = w.usage.get(quota.metric, NO_USAGE).under(quota.aggregation)
    overrides = w.override_days.get(quota.metric, ())
    included = (
        effective_included(quota.included, w.window, overrides) if overrides else quota.included
    )
    billable = billable_quantity(quantity, included)
    priced = quota.pricing.compute(billable)
    breakdown: dict[str, Any] = {
        "aggregation": quota.aggregation,
        "pricing": quota.pricing_json,
        "items": priced.breakdown_json(),
        "unrounded_amount": str(priced.amount),
    }
    if overrides:
        breakdown["included_rule"] = {
            "plan_included": str(quota.included),
            "window_days": w.window.days,
            "overrides": [{"included": str(i), "days": d} for i, d in overrides],
        }
    return DraftLine(
        line_no=line_no,
        kind="usage",
        subscription_id=w.subscription_id,
        plan_code=w.plan.code,
        metric=quota.metric,
        description=(
            f"{quota.metric}: {quantity!s} ({quota.aggregation}), {included!s} included,"
            f" {billable!s} billable, {quota.pricing.model}"
        ),
        window_start=w.window.start,
        window_end=w.window.end,
        quantity=quantity,
        included=included,
        billable_quantity=billable,
        pricing_model=quota.pricing.model,
        amount=round_money(priced.amount, currency),
        breakdown=breakdown,
    )


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
    usage); `skipped`: tenants left alone (closed invoice, mixed currencies).
    """

    period: BillingPeriod
    generated: int
    updated: int
    skipped: int
    closed: int
    removed: int
    invoices: tuple[InvoiceSummary, ...]
    skipped_tenants: Mapping[str, str]  # tenant -> reason (invoice_closed, mixed_currencies)
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def invoice_ids(self) -> list[int]:
        return [inv.invoice_id for inv in self.invoices]

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
) -> GenerationResult:
    """Create or refresh the period's drafts (all tenants or `tenant_ids`); optionally close.

    Safe to rerun: one draft per (tenant, period) is created or refreshed in place (only
    lines that changed are rewritten) in this one transaction, so a rerun yields the same
    drafts with the same ids. Closed and void invoices are never touched (a void one no
    longer blocks a fresh draft).
    Drafts of tenants that no longer have a subscription in the period are removed.
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
        {
            "lock_class": INVOICE_LOCK_CLASS,
            "period_key": period.start.year * 100 + period.start.month,
        },
    )
    # NOTE: the usage aggregation hashes one group per subscription and metric; the
    # default 4MB work_mem makes it sort on disk. Local to this transaction.
    conn.execute(sql("invoicing/set_invoice_run_work_mem"))
    catalog = load_catalog(conn)
    live = {
        r.tenant_id: r.status
        for r in conn.execute(sql("invoicing/select_live_invoice_status"), params)
    }
    windows = _load_billable_windows(conn, params, catalog)
    clock.lap("read")
    crash_point("invoices.read")

    skipped: dict[str, str] = {}
    candidates: list[tuple[str, str]] = []  # (tenant, currency) to price
    for tenant_id in sorted(windows):
        currencies = {w.plan.currency for w in windows[tenant_id]}
        if live.get(tenant_id) == "closed":
            skipped[tenant_id] = "invoice_closed"
        elif len(currencies) > 1:
            skipped[tenant_id] = MixedCurrencies.code
        else:
            candidates.append((tenant_id, currencies.pop()))

    drafts = _open_run_drafts(conn, params, run_id, candidates)
    for tenant_id, _ in candidates:
        if tenant_id not in drafts:  # closed by someone else since it was read
            skipped[tenant_id] = "invoice_closed"

    def priced(tenants: Iterable[str]) -> Iterator[DraftInvoice]:
        for tenant_id in tenants:
            yield compute_invoice(tenant_id, period, windows[tenant_id])

    new = [t for t, _ in candidates if t in drafts and drafts[t][1]]
    known = [t for t, _ in candidates if t in drafts and not drafts[t][1]]
    # NOTE: the loaded windows are a few hundred thousand long-lived objects; freezing them
    # keeps Python's cyclic GC from rescanning them on every collection while pricing
    # allocates (and frees, by refcount) millions of short-lived ones.
    gc.freeze()
    try:
        heads = _copy_lines(conn, priced(new), {t: drafts[t][0] for t in new}, direct=True)
        heads += _copy_lines(conn, priced(known), {}, direct=False)
    finally:
        gc.unfreeze()
    clock.lap("price_and_stage")
    crash_point("invoices.staged")
    updated, removed = _finish_drafts(conn, {**params, "run_id": run_id}, heads)
    summaries = [
        InvoiceSummary(drafts[h.tenant_id][0], h.tenant_id, h.currency, h.total) for h in heads
    ]
    clock.lap("write")
    crash_point("invoices.written")
    closed = 0
    if close:
        closed = len(close_period_invoices(conn, period, tenant_ids=tenants, now=now))
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
        skipped_tenants=skipped,
        timings=clock.laps,
    )


class _Clock:
    """Seconds per phase of a run (reported in the job run's summary and the benchmark)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def load_catalog(conn: sa.Connection) -> dict[int, PlanTerms]:
    """Every plan with its parsed pricing (a stored pricing that does not parse is an error)."""
    plans: dict[int, dict[str, Any]] = {}
    quotas: dict[int, list[QuotaTerms]] = defaultdict(list)
    for r in conn.execute(sql("invoicing/select_billing_catalog")):
        plans.setdefault(
            r.plan_id,
            {
                "plan_id": r.plan_id,
                "code": r.plan_code,
                "name": r.plan_name,
                "currency": r.currency,
                "base_fee": r.base_fee,
                "minimum_commitment": r.minimum_commitment,
            },
        )
        if r.metric is not None:
            pricing = pricing_from_row(r.pricing_model, r.pricing)
            quotas[r.plan_id].append(
                QuotaTerms(
                    metric=r.metric,
                    aggregation=r.aggregation,
                    included=r.included,
                    pricing=pricing,
                    pricing_json=pricing.to_json(),
                )
            )
    return {
        plan_id: PlanTerms(**fields, quotas=tuple(quotas[plan_id]))
        for plan_id, fields in plans.items()
    }


def load_billable_windows(
    conn: sa.Connection, period: BillingPeriod, tenant_ids: Sequence[str] | None
) -> dict[str, list[BillableWindow]]:
    """The period's billable windows by tenant (all tenants, or `tenant_ids`), priced by
    the catalog as it is now: the input of `compute_invoice` (used by the spend measure)."""
    params = {
        "period_start": period.start,
        "period_end": period.end,
        "tenant_ids": sorted(set(tenant_ids)) if tenant_ids is not None else None,
    }
    return _load_billable_windows(conn, params, load_catalog(conn))


def _load_billable_windows(
    conn: sa.Connection, params: Mapping[str, Any], catalog: Mapping[int, PlanTerms]
) -> dict[str, list[BillableWindow]]:
    """Three set-based reads, joined in memory by subscription id."""
    # NOTE: .all() fetches in one call; iterating a result fetches row by row (3x slower
    # for the hundreds of thousands of rows of a full run).
    usage: dict[int, dict[str, UsageTotals]] = defaultdict(dict)
    rows = conn.execute(sql("invoicing/select_billing_window_usage"), params).all()
    for subscription_id, metric, quantity_sum, event_count, quantity_max in rows:
        usage[subscription_id][metric] = UsageTotals(quantity_sum, event_count, quantity_max)
    del rows
    overrides: dict[int, dict[str, list[tuple[Decimal, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in conn.execute(sql("invoicing/select_billing_override_days"), params):
        overrides[r.subscription_id][r.metric].append((r.included, int(r.days)))
    by_tenant: dict[str, list[BillableWindow]] = defaultdict(list)
    for r in conn.execute(sql("invoicing/select_billing_windows"), params).all():
        by_tenant[r.tenant_id].append(
            BillableWindow(
                subscription_id=r.subscription_id,
                plan=catalog[r.plan_id],
                window=Window(r.window_start, r.window_end),
                usage=usage.get(r.subscription_id, {}),
                override_days={
                    metric: sorted(pairs) for metric, pairs in overrides[r.subscription_id].items()
                }
                if r.subscription_id in overrides
                else {},
            )
        )
    return by_tenant


_LINE_COLUMNS = (
    "line_no, kind, subscription_id, plan_code, metric, description, window_start,"
    " window_end, quantity, included, billable_quantity, pricing_model, amount, breakdown"
)


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
    conn.execute(sql("invoicing/create_invoice_stage"))
    conn.execute(sql("invoicing/create_invoice_line_stage"))
    conn.execute(sql("invoicing/create_invoice_run_drafts"))
    with (
        driver_connection(conn).cursor() as cur,
        cur.copy("COPY invoice_stage (tenant_id, currency, total) FROM STDIN") as copy,
    ):
        for tenant_id, currency in candidates:
            copy.write_row((tenant_id, currency, ZERO))
    conn.execute(sql("invoicing/insert_new_draft_invoices"), {**params, "run_id": run_id})
    conn.execute(sql("invoicing/lock_run_draft_invoices"), params)
    return {
        r.tenant_id: (r.invoice_id, r.is_new)
        for r in conn.execute(sql("invoicing/select_run_drafts")).all()
    }


def _copy_lines(
    conn: sa.Connection,
    drafts: Iterable[DraftInvoice],
    invoice_ids: Mapping[str, int],
    *,
    direct: bool,
) -> list[DraftInvoice]:
    """COPY the lines of the drafts as they are priced; returns the heads (no lines).

    direct: the drafts were created by this run and hold no lines yet, so their lines go
    straight into invoice_lines; otherwise into the staging table, to be compared with
    the lines the draft holds (`_finish_drafts`).
    NOTE: the lines stream to Postgres while the next tenants are priced, so Python's
    pricing and the server's inserts run side by side; only the heads stay in memory.
    """
    heads: list[DraftInvoice] = []
    dumps = orjson.dumps
    target = (
        f"invoice_lines (invoice_id, {_LINE_COLUMNS})"
        if direct
        else f"invoice_line_stage (tenant_id, {_LINE_COLUMNS})"
    )
    with driver_connection(conn).cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
        for d in drafts:
            key = invoice_ids[d.tenant_id] if direct else d.tenant_id
            for li in d.lines:
                copy.write_row(
                    (
                        key,
                        li.line_no,
                        li.kind,
                        li.subscription_id,
                        li.plan_code,
                        li.metric,
                        li.description,
                        li.window_start,
                        li.window_end,
                        li.quantity,
                        li.included,
                        li.billable_quantity,
                        li.pricing_model,
                        li.amount,
                        dumps(li.breakdown).decode(),
                    )
                )
            heads.append(DraftInvoice(d.tenant_id, d.currency, d.total, ()))
            crash_point("invoices.tenant_staged")
    return heads


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


# ---------------------------------------------------------------------------------------
# Lifecycle: close, void
# ---------------------------------------------------------------------------------------


def close_period_invoices(
    conn: sa.Connection,
    period: BillingPeriod,
    *,
    tenant_ids: Sequence[str] | None = None,
    now: dt.datetime | None = None,
) -> list[int]:
    """Close every draft of the period (all tenants or `tenant_ids`); returns their ids."""
    moment = now or utc_now()
    # NOTE (contract 5b): prepaid credits apply in this closing transaction, to the drafts
    # whose tenant holds grants, before the bulk close freezes them (services/credits.py).
    apply_credits_to_period_drafts(conn, period.start, tenant_ids, moment)
    rows = conn.execute(
        sql("invoicing/close_draft_invoices"),
        {
            "invoice_ids": None,
            "period_start": period.start,
            "tenant_ids": list(tenant_ids) if tenant_ids is not None else None,
            "now": moment,
        },
    )
    closed = sorted(r.id for r in rows)
    _emit_invoice_events(conn, "invoice.closed", closed, moment)
    return closed


def close_invoice(
    conn: sa.Connection, invoice_id: int, *, now: dt.datetime | None = None
) -> InvoiceView:
    """draft -> closed: a unique sequential number and closed_at; 409 for any other status.

    Numbers read INV-<YYYYMM of the period>-<global sequence, 6+ digits>, e.g.
    INV-202611-000042: unique (a unique constraint), increasing in closing order. They
    come from the invoice_number_seq sequence, so a closing transaction that rolls back
    leaves a gap; no number is ever reused.
    """
    status = _lock_status(conn, invoice_id)
    if status != "draft":
        raise Conflict(
            f"invoice {invoice_id} is {status}: only a draft can be closed",
            code="invoice_not_draft",
        )
    moment = now or utc_now()
    # NOTE (contract 5b): credits apply inside this closing transaction while the invoice is
    # still a draft (its lines freeze at close); see services/credits.py for why a grant
    # is never applied twice or overdrawn.
    apply_credits_at_close(conn, invoice_id, moment)
    conn.execute(
        sql("invoicing/close_draft_invoices"),
        {
            "invoice_ids": [invoice_id],
            "period_start": None,
            "tenant_ids": None,
            "now": moment,
        },
    )
    _emit_invoice_events(conn, "invoice.closed", [invoice_id], moment)
    return get_invoice(conn, invoice_id)


def void_invoice(
    conn: sa.Connection, invoice_id: int, *, now: dt.datetime | None = None
) -> InvoiceView:
    """draft or closed -> void (voided_at); 409 when already void."""
    status = _lock_status(conn, invoice_id)
    if status == "void":
        raise Conflict(f"invoice {invoice_id} is void already", code="invoice_already_void")
    moment = now or utc_now()
    conn.execute(sql("invoicing/void_invoice"), {"invoice_id": invoice_id, "now": moment})
    _emit_invoice_events(conn, "invoice.voided", [invoice_id], moment)
    return get_invoice(conn, invoice_id)


def _emit_invoice_events(
    conn: sa.Connection, event_type: EventType, invoice_ids: Sequence[int], now: dt.datetime
) -> None:
    """invoice.closed / invoice.voided into the webhook outbox, in this transaction."""
    if not invoice_ids or not has_subscribers(conn, event_type):
        return
    views = _select_invoices(conn, invoice_ids=invoice_ids)
    emit_many(conn, event_type, [(v.tenant_id, invoice_event_data(v)) for v in views], now=now)


def invoice_event_data(view: InvoiceView) -> dict[str, Any]:
    """The `data` of invoice.closed / invoice.voided."""
    return {
        "invoice_id": view.id,
        "tenant_id": view.tenant_id,
        "number": view.number,
        "status": view.status,
        "period": view.period,
        "period_start": view.period_start,
        "period_end": view.period_end,
        "currency": view.currency,
        "total": view.total,
        "closed_at": view.closed_at,
        "voided_at": view.voided_at,
    }


def _lock_status(conn: sa.Connection, invoice_id: int) -> str:
    row = conn.execute(
        sql("invoicing/select_invoice_for_update"), {"invoice_id": invoice_id}
    ).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found", code="invoice_not_found")
    return str(row.status)


# ---------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLineView:
    """One invoice line as the API and the CLI show it (the API's schema uses it as is)."""

    line_no: int
    kind: Literal["base_fee", "usage", "commitment_true_up", "credit"]
    subscription_id: int | None
    plan_code: str
    metric: str | None
    description: str
    window_start: dt.date
    window_end: dt.date
    quantity: Decimal
    included: Decimal
    billable_quantity: Decimal
    pricing_model: str | None
    amount: Decimal
    breakdown: Mapping[str, Any]


@dataclass(frozen=True)
class InvoiceView:
    id: int
    tenant_id: str
    period_start: dt.date
    period_end: dt.date
    currency: str
    status: str
    number: str | None
    total: Decimal
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    voided_at: dt.datetime | None
    lines: tuple[InvoiceLineView, ...] | None = None

    @property
    def period(self) -> str:
        return f"{self.period_start:%Y-%m}"


def get_invoice(conn: sa.Connection, invoice_id: int) -> InvoiceView:
    """One invoice with its lines; NotFound if there is none."""
    invoices = _select_invoices(conn, invoice_ids=[invoice_id], with_lines=True)
    if not invoices:
        raise NotFound(f"invoice {invoice_id} not found", code="invoice_not_found")
    return invoices[0]


def list_invoices(
    conn: sa.Connection,
    tenant_id: str,
    *,
    period: BillingPeriod | None = None,
    status: str | None = None,
    with_lines: bool = False,
) -> list[InvoiceView]:
    """A tenant's invoices, newest period first, optionally for one period and status."""
    return _select_invoices(
        conn, tenant_id=tenant_id, period=period, status=status, with_lines=with_lines
    )


def _select_invoices(
    conn: sa.Connection,
    *,
    invoice_ids: Sequence[int] | None = None,
    tenant_id: str | None = None,
    period: BillingPeriod | None = None,
    status: str | None = None,
    with_lines: bool = False,
) -> list[InvoiceView]:
    rows = conn.execute(
        sql("invoicing/select_invoices"),
        {
            "invoice_ids": list(invoice_ids) if invoice_ids is not None else None,
            "tenant_id": tenant_id,
            "period_start": period.start if period else None,
            "status": status,
        },
    ).mappings()
    heads = [dict(r) for r in rows]
    # NOTE: amounts are stored NUMERIC(24, 6) but were rounded to the minor unit when
    # written; they are shown at the currency's scale ("40.00", "1050", "4.840").
    scale = {h["id"]: quantum(h["currency"]) for h in heads}
    lines: dict[int, list[InvoiceLineView]] = defaultdict(list)
    if with_lines and heads:
        for r in conn.execute(
            sql("invoicing/select_invoice_lines"), {"invoice_ids": [h["id"] for h in heads]}
        ).mappings():
            fields = dict(r)
            invoice_id = fields.pop("invoice_id")
            fields["amount"] = fields["amount"].quantize(scale[invoice_id])
            lines[invoice_id].append(InvoiceLineView(**fields))
    out: list[InvoiceView] = []
    for h in heads:
        h.pop("run_id", None)
        h["total"] = h["total"].quantize(scale[h["id"]])
        out.append(InvoiceView(**h, lines=tuple(lines[h["id"]]) if with_lines else None))
    return out


# ---------------------------------------------------------------------------------------
# Reports for the run's artifact
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnsubscribedUsage:
    tenant_id: str
    metrics: int
    usage_days: int
    events: int


@dataclass(frozen=True)
class LateUsage:
    tenant_id: str
    invoice_id: int
    number: str
    period_start: dt.date
    metric: str
    usage_days: int
    quantity_sum: Decimal
    events: int
    last_updated_at: dt.datetime


def unsubscribed_usage(
    conn: sa.Connection, period: BillingPeriod, *, tenant_ids: Sequence[str] | None = None
) -> list[UnsubscribedUsage]:
    """Tenants with usage in the period and no subscription in it (billed to nobody)."""
    rows = conn.execute(
        sql("invoicing/select_unsubscribed_usage"),
        {
            "period_start": period.start,
            "period_end": period.end,
            "tenant_ids": list(tenant_ids) if tenant_ids is not None else None,
        },
    ).mappings()
    return [UnsubscribedUsage(**{**r, "events": int(r["events"])}) for r in rows]


def late_usage_in_closed_periods(
    conn: sa.Connection, *, tenant_ids: Sequence[str] | None = None, max_rows: int = 1000
) -> list[LateUsage]:
    """Usage (re)aggregated after its period's invoice closed: reported, never billed."""
    rows = conn.execute(
        sql("invoicing/select_late_usage_in_closed_periods"),
        {"tenant_ids": list(tenant_ids) if tenant_ids is not None else None, "max_rows": max_rows},
    ).mappings()
    return [LateUsage(**{**r, "events": int(r["events"])}) for r in rows]
