"""The invoice run's pricing, batch by batch: read a batch of tenants, price, format COPY text.

A batch is at most `COPY_TENANTS` tenants whose drafts go to one COPY statement: new
drafts' lines straight into invoice_lines (keyed by invoice id), refreshed drafts' lines
into the run's staging table (keyed by tenant). `price_batch` reads the batch's usage,
metric values and override days (the same three reads as a preview, restricted to the
batch's tenants), prices every tenant (`compute_invoice`) and returns the text of its
lines as COPY FROM reads it, the drafts' heads and the tenants that could not be priced.

It is a pure function of the snapshot it reads, so the run calls it in its own process
(`generation`) or in worker processes that read the run's exported snapshot
(`services.invoicing.workers`): the same batches in the same order give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from models.period import BillingPeriod
from services.invoicing.catalog import WindowRow, load_billable_windows
from services.invoicing.compute import (
    BillableWindow,
    DraftInvoice,
    DraftLine,
    PlanTerms,
    check_fits,
    compute_invoice,
)
from tallyflow.core.copytext import COPY_NULL, copy_field, copy_text
from tallyflow.core.errors import TallyflowError
from tallyflow.core.faults import crash_point, raise_point

# Drafts per COPY statement of their lines (one batch).
# NOTE: one COPY statement per batch, not one for the whole run: the lines' statement
# trigger keeps every row of its statement in a transition table, which past work_mem
# spills to disk (about 1 KB a line: 3 GB for a 100,000-tenant run).
COPY_TENANTS = 1000

LINE_COLUMNS = (
    "line_no, kind, subscription_id, plan_code, metric, description, window_start,"
    " window_end, quantity, included, billable_quantity, pricing_model, amount, breakdown,"
    ' "group"'
)


@dataclass(frozen=True)
class Batch:
    """Tenants whose lines go to one COPY statement, each with its key in the target."""

    tenants: tuple[str, ...]
    keys: tuple[int | str, ...]  # invoice id (direct) or tenant id (staged)
    direct: bool  # new drafts: lines straight into invoice_lines

    @property
    def copy_target(self) -> str:
        if self.direct:
            return f"invoice_lines (invoice_id, {LINE_COLUMNS})"
        return f"invoice_line_stage (tenant_id, {LINE_COLUMNS})"


@dataclass(frozen=True)
class PricedBatch:
    """A batch priced: its lines as COPY text, the drafts' heads (no lines), the failures."""

    text: bytes
    heads: tuple[DraftInvoice, ...]
    failed: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # tenant -> reason, msg


def make_batches(new: Sequence[tuple[str, int]], known: Sequence[str]) -> list[Batch]:
    """New drafts (tenant, invoice id) then refreshed ones, `COPY_TENANTS` tenants a batch."""
    size = COPY_TENANTS
    batches = [
        Batch(tuple(t for t, _ in part), tuple(i for _, i in part), direct=True)
        for part in (new[n : n + size] for n in range(0, len(new), size))
    ]
    batches += [
        Batch(tuple(part), tuple(part), direct=False)
        for part in (known[n : n + size] for n in range(0, len(known), size))
    ]
    return batches


def window_rows(
    windows: Mapping[str, Sequence[WindowRow]], tenants: Iterable[str] | None = None
) -> list[WindowRow]:
    """The subscription windows of `tenants` (default: all), in their order."""
    return [w for t in (windows if tenants is None else tenants) for w in windows.get(t, ())]


class Pricer:
    """Prices tenants one by one; a tenant that cannot be priced is recorded, not raised.

    NOTE: one tenant cannot fail the month for all: a pricing error or an amount beyond
    what the columns hold (checked before anything is written) skips that tenant with
    its reason; the others are invoiced.
    """

    def __init__(self, period: BillingPeriod, windows: Mapping[str, list[BillableWindow]]):
        self.period = period
        self.windows = windows
        self.failed: dict[str, tuple[str, str]] = {}  # tenant -> (reason, message)

    def one(self, tenant_id: str) -> DraftInvoice | None:
        try:
            return check_fits(compute_invoice(tenant_id, self.period, self.windows[tenant_id]))
        except TallyflowError as exc:
            self.failed[tenant_id] = (exc.code, exc.message)
        except (ArithmeticError, ValueError) as exc:
            self.failed[tenant_id] = ("pricing_failed", f"tenant {tenant_id}: {exc!r}")
        return None


def read_and_price_batch(
    conn: sa.Connection,
    period: BillingPeriod,
    catalog: Mapping[int, PlanTerms],
    windows: Sequence[WindowRow],
    batch: Batch,
) -> PricedBatch:
    """Read the batch's usage (`windows`: its tenants' subscription windows) and price it."""
    params = {
        "period_start": period.start,
        "period_end": period.end,
        "tenant_ids": list(batch.tenants),
    }
    return price_batch(Pricer(period, load_billable_windows(conn, params, catalog, windows)), batch)


def price_batch(pricer: Pricer, batch: Batch) -> PricedBatch:
    """Price the batch's tenants and format their lines (pure: the pricer holds the usage)."""
    crash_point("invoices.price_batch")
    raise_point("invoices.price_batch")
    writer = LineText()
    heads = []
    for tenant_id, key in zip(batch.tenants, batch.keys, strict=True):
        draft = pricer.one(tenant_id)
        if draft is None:
            continue
        writer.draft(key, draft)
        heads.append(DraftInvoice(draft.tenant_id, draft.currency, draft.total, ()))
    failed = {t: pricer.failed[t] for t in batch.tenants if t in pricer.failed}
    return PricedBatch(writer.text(), tuple(heads), failed)


class LineText:
    """Invoice lines as COPY text rows, in the column order of `LINE_COLUMNS` after the key."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        # NOTE: the lines of one matrix group share one group dict (compute.GroupTerms),
        # so its JSON is encoded once per group, not once per line. Keyed by identity; the
        # cache holds each dict, so no other object can take its id meanwhile.
        self._groups: dict[int, tuple[Mapping[str, Any], str]] = {}
        self._known: dict[str, str] = {}  # a short value -> its COPY text

    def draft(self, key: int | str, draft: DraftInvoice) -> None:
        head = copy_field(key)
        append = self._parts.append
        for li in draft.lines:
            append(self._line(head, li))

    def _line(self, head: str, li: DraftLine) -> str:
        # NOTE: the amounts and quantities are finite Decimals (check_fits compared each
        # with its bound), so str() is their COPY form; kind, plan code, metric and
        # pricing model come from a handful of values, escaped once each.
        short = self._short
        return (
            "\t".join(
                (
                    head,
                    str(li.line_no),
                    short(li.kind),
                    COPY_NULL if li.subscription_id is None else str(li.subscription_id),
                    short(li.plan_code),
                    short(li.metric),
                    copy_text(li.description),
                    li.window_start.isoformat(),
                    li.window_end.isoformat(),
                    str(li.quantity),
                    str(li.included),
                    str(li.billable_quantity),
                    short(li.pricing_model),
                    str(li.amount),
                    copy_text(orjson.dumps(li.breakdown).decode()),
                    COPY_NULL if li.group is None else self._group(li.group),
                )
            )
            + "\n"
        )

    def _short(self, value: str | None) -> str:
        """A value of a handful (kind, plan code, metric, pricing model), escaped once."""
        if value is None:
            return COPY_NULL
        text = self._known.get(value)
        if text is None:
            text = self._known[value] = copy_text(value)
        return text

    def _group(self, group: Mapping[str, Any]) -> str:
        hit = self._groups.get(id(group))
        if hit is None or hit[0] is not group:
            text = orjson.dumps(group, option=orjson.OPT_SORT_KEYS).decode()
            hit = self._groups[id(group)] = (group, copy_text(text))
        return hit[1]

    def text(self) -> bytes:
        return "".join(self._parts).encode()
