"""The pure core of invoicing: one tenant's invoice from its billable windows.

No I/O: the invoice run, the preview and corrections all price through `compute_invoice`,
so a preview equals the draft the run writes at the same instant (one code path).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson

from models.money import quantum, round_money
from models.period import BillingPeriod
from models.pricing import PricingModel
from models.pricing.base import PRICING_CONTEXT
from models.pricing.matrix import Matrix, MatrixEntry
from services.commitment import TrueUp, commitment_true_up
from services.proration import Window, billable_quantity, effective_included, prorate_base_fee
from tallyflow.core.errors import Conflict

if TYPE_CHECKING:
    from services.credits import CreditUse

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
    # NOTE: a matrix quota's terms per group (its items), filled as groups are priced: an
    # invoice run prices the same few groups for every tenant, and finding the matching
    # entry was most of a group line's cost.
    group_terms: dict[tuple[tuple[str, str | None], ...], GroupTerms] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )


class GroupTerms(NamedTuple):
    """What a matrix quota's line of one group always shows: the entry and the labels."""

    number: int | None  # 1-based entry; None = default
    entry: MatrixEntry
    label: str  # key=value, ...
    entry_text: str  # "price N" or "default"
    pricing_json: Mapping[str, Any]  # the entry's own pricing
    # NOTE: the parts of every line of this group that do not depend on its value, made
    # once per run (an invoice run writes millions of such lines): the group as stored
    # (one dict shared by those lines, never mutated), the order of groups within a
    # window (the group's canonical JSON) and the fixed pieces of the description.
    group: Mapping[str, str | None]
    sort_key: bytes
    description_head: str  # "metric [label]: "
    description_mid: str  # " (aggregation), N included, "
    description_tail: str  # " billable, matrix price N"


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

    subscription_id: int | None
    plan: PlanTerms
    window: Window
    usage: Mapping[str, UsageTotals] = field(default_factory=dict)
    # metric -> [(included, days in force)] for overrides of `included`
    override_days: Mapping[str, Sequence[tuple[Decimal, int]]] = field(default_factory=dict)
    # billable metric code -> its values over this window (total and groups, from
    # metric_usage); a quota naming one is priced from these.
    metrics: Mapping[str, MetricValues] = field(default_factory=dict)


class MetricValues(NamedTuple):
    """A billable metric over one window: its total and each group's value."""

    total: Decimal = ZERO
    groups: tuple[tuple[Mapping[str, str | None], Decimal], ...] = ()
    grouped: bool = False


class DraftLine(NamedTuple):
    """One priced invoice line (a NamedTuple: the run builds one per subscription metric)."""

    line_no: int
    kind: str  # base_fee | usage | commitment_true_up | credit (see `credit_lines`)
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
    amount: Decimal  # rounded half-up to the currency's minor unit
    breakdown: Mapping[str, Any]
    group: Mapping[str, Any] | None = None  # a matrix line's group (contract 4a)


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
            # NOTE: a billable metric's matrix quota gives one line per group.
            if quota.metric in w.metrics and isinstance(quota.pricing, Matrix):
                lines.extend(_matrix_usage_lines(len(lines) + 1, w, quota, currency))
                continue
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
    return _window_line(
        line_no,
        w,
        kind="base_fee",
        description=(
            f"{w.plan.name} base fee, {w.window.days}/{period.days} days"
            f" ({w.window.start!s} to {w.window.end!s}, end exclusive)"
        ),
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
    return _window_line(
        line_no,
        w,
        kind="commitment_true_up",
        description=(
            f"{w.plan.name} minimum commitment {true_up.prorated!s} for"
            f" {w.window.days}/{period.days} days, {true_up.charged!s} charged: true-up"
        ),
        amount=true_up.amount,
        breakdown=true_up.breakdown(w.window, period),
    )


def _window_line(
    line_no: int,
    w: BillableWindow,
    *,
    kind: str,
    description: str,
    amount: Decimal,
    breakdown: Mapping[str, Any],
) -> DraftLine:
    """A line priced per active day of a subscription window (base fee, true-up): its
    quantity and billable quantity are the window's days, nothing included."""
    days = Decimal(w.window.days)
    return DraftLine(
        line_no=line_no,
        kind=kind,
        subscription_id=w.subscription_id,
        plan_code=w.plan.code,
        metric=None,
        description=description,
        window_start=w.window.start,
        window_end=w.window.end,
        quantity=days,
        included=ZERO,
        billable_quantity=days,
        pricing_model=None,
        amount=amount,
        breakdown=breakdown,
    )


def _usage_line(line_no: int, w: BillableWindow, quota: QuotaTerms, currency: str) -> DraftLine:
    quantity = (
        w.metrics[quota.metric].total  # a billable metric's total
        if quota.metric in w.metrics
        else w.usage.get(quota.metric, NO_USAGE).under(quota.aggregation)
    )
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


def _matrix_usage_lines(
    first_line_no: int, w: BillableWindow, quota: QuotaTerms, currency: str
) -> list[DraftLine]:
    """Issue 13: one usage line per group with usage in the window, each priced by the
    matrix entry it matches first (else `default`) on max(0, value - entry's included).
    Overrides of `included` do not apply to matrix quotas (the quota's included is 0)."""
    matrix = quota.pricing
    assert isinstance(matrix, Matrix)
    values = w.metrics[quota.metric]
    group_terms = quota.group_terms
    priced: list[tuple[GroupTerms, Decimal]] = []
    for group, value in values.groups:
        key = tuple(group.items())
        terms = group_terms.get(key)
        if terms is None:
            terms = group_terms[key] = _group_terms(quota, matrix, group)
        priced.append((terms, value))
    priced.sort(key=lambda tv: tv[0].sort_key)
    subtract = PRICING_CONTEXT.subtract
    lines: list[DraftLine] = []
    for terms, value in priced:
        entry = terms.entry
        billable = max(subtract(value, entry.included), ZERO)
        result = entry.pricing.compute(billable)
        lines.append(
            DraftLine(
                line_no=first_line_no + len(lines),
                kind="usage",
                subscription_id=w.subscription_id,
                plan_code=w.plan.code,
                metric=quota.metric,
                description=(
                    f"{terms.description_head}{value!s}{terms.description_mid}{billable!s}"
                    f"{terms.description_tail}"
                ),
                window_start=w.window.start,
                window_end=w.window.end,
                quantity=value,
                included=entry.included,
                billable_quantity=billable,
                pricing_model=matrix.model,
                amount=round_money(result.amount, currency),
                breakdown={
                    "aggregation": quota.aggregation,
                    "group": terms.group,
                    "matrix_entry": terms.number,
                    # NOTE: the entry that priced this group, not the whole matrix (the
                    # quota's terms name it all): the line's own price, as a document shows it.
                    "pricing": terms.pricing_json,
                    "items": result.breakdown_json(),
                    "unrounded_amount": str(result.amount),
                },
                group=terms.group,
            )
        )
    return lines


def _group_terms(quota: QuotaTerms, matrix: Matrix, group: Mapping[str, str | None]) -> GroupTerms:
    """A group's matrix entry and the fixed parts of its lines (see GroupTerms)."""
    number, entry = matrix.entry_for(group)
    label = ", ".join(f"{k}={v if v is not None else 'none'}" for k, v in group.items())
    entry_text = "default" if number is None else f"price {number}"
    return GroupTerms(
        number=number,
        entry=entry,
        label=label,
        entry_text=entry_text,
        pricing_json=entry.pricing.to_json(),
        group=dict(group),
        sort_key=orjson.dumps(group, option=orjson.OPT_SORT_KEYS),
        description_head=f"{quota.metric} [{label}]: ",
        description_mid=f" ({quota.aggregation}), {entry.included!s} included, ",
        description_tail=f" billable, matrix {entry_text}",
    )


# ---------------------------------------------------------------------------------------
# Credit lines (contract 5b): the same lines would-apply on drafts and previews, and at close
# ---------------------------------------------------------------------------------------


class NumberedLine(Protocol):
    """What credit lines need of an invoice's other lines (a DraftLine or a stored line)."""

    @property
    def line_no(self) -> int: ...
    @property
    def plan_code(self) -> str: ...


def credit_lines(
    uses: Sequence[CreditUse],
    *,
    currency: str,
    period: BillingPeriod,
    lines: Sequence[NumberedLine],
    would_apply: bool,
) -> tuple[DraftLine, ...]:
    """One negative `credit` line per grant used (`services.credits.plan_credits` decides
    the uses), numbered after `lines` (the invoice's other lines), over the whole period.

    `would_apply` marks the lines a draft or preview shows (nothing applied or reserved;
    the invoice's total does not include them); a close writes the same lines with False.
    Its grant id is in the breakdown (`grant_id`), next to the grant's remaining before and
    after, and whether it `would_apply`.
    """
    first = max((li.line_no for li in lines), default=0)
    plan_code = min(lines, key=lambda li: li.line_no).plan_code if lines else ""
    unit = quantum(currency)
    return tuple(
        DraftLine(
            line_no=first + n,
            kind="credit",
            subscription_id=None,
            plan_code=plan_code,
            metric=None,
            description=(
                f"Prepaid credit (grant #{use.grant_id}"
                f"{', would apply at close' if would_apply else ''}): {use.amount} {currency}"
            ),
            window_start=period.start,
            window_end=period.end,
            quantity=Decimal(1),
            included=ZERO,
            billable_quantity=Decimal(1),
            pricing_model=None,
            amount=-use.amount,
            breakdown={
                "grant_id": use.grant_id,
                "would_apply": would_apply,
                "priority": use.priority,
                "expires_on": use.expires_on.isoformat() if use.expires_on else None,
                "remaining_before": str(use.remaining_before.quantize(unit)),
                "remaining_after": str(use.remaining_after.quantize(unit)),
            },
        )
        for n, use in enumerate(uses, start=1)
    )


# ---------------------------------------------------------------------------------------
# Bounds: what the database can hold (checked before writing, one tenant at a time)
# ---------------------------------------------------------------------------------------

# NOTE: money columns are NUMERIC(24, 6) (|x| < 10^18) and quantities NUMERIC(38, 6)
# (|x| < 10^32). A line beyond them would abort the whole run's transaction with a
# numeric overflow; checking each priced invoice first lets the run skip that one tenant
# (reason `amount_out_of_range`) and invoice the others.
MONEY_LIMIT = Decimal(10) ** 18
QUANTITY_LIMIT = Decimal(10) ** 32


class AmountOutOfRange(Conflict):
    """A priced invoice holds an amount or quantity its columns cannot store."""

    code = "amount_out_of_range"


def check_fits(invoice: DraftInvoice) -> DraftInvoice:
    """The invoice itself if every amount and quantity fits its column, else AmountOutOfRange."""
    if abs(invoice.total) >= MONEY_LIMIT:
        raise AmountOutOfRange(
            f"tenant {invoice.tenant_id}: total {invoice.total} exceeds the money bound 1e18"
        )
    for li in invoice.lines:
        if abs(li.amount) >= MONEY_LIMIT:
            raise AmountOutOfRange(
                f"tenant {invoice.tenant_id}: line {li.line_no} amount {li.amount} exceeds"
                " the money bound 1e18"
            )
        if max(abs(li.quantity), abs(li.included), abs(li.billable_quantity)) >= QUANTITY_LIMIT:
            raise AmountOutOfRange(
                f"tenant {invoice.tenant_id}: line {li.line_no} quantity exceeds 1e32"
            )
    return invoice


# ---------------------------------------------------------------------------------------
# Corrections (contract 5.2): re-rated invoice minus what was billed so far
# ---------------------------------------------------------------------------------------

# Line kinds the run computes from usage and the catalog; a correction compares only those.
# NOTE: lines added at close (prepaid `credit` lines, another branch) are not re-rated: a
# credit applied once is not reversed by a correction.
RERATED_KINDS = frozenset({"base_fee", "usage", "commitment_true_up"})

LineKey = tuple[str, int | None, str, str | None, str | None]


class BilledLine(Protocol):
    """What a correction needs of a line already billed (a stored line view fits)."""

    @property
    def kind(self) -> str: ...
    @property
    def subscription_id(self) -> int | None: ...
    @property
    def plan_code(self) -> str: ...
    @property
    def metric(self) -> str | None: ...
    @property
    def description(self) -> str: ...
    @property
    def window_start(self) -> dt.date: ...
    @property
    def window_end(self) -> dt.date: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def included(self) -> Decimal: ...
    @property
    def billable_quantity(self) -> Decimal: ...
    @property
    def pricing_model(self) -> str | None: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def group(self) -> Mapping[str, Any] | None: ...


def line_key(line: BilledLine | DraftLine) -> LineKey:
    """Which billed line a re-rated line corrects: same kind, subscription, plan and metric.

    NOTE: the window is not part of the key: a subscription whose dates were fixed after
    close corrects its own base-fee line. Grouped usage lines (billable metrics) add
    their group to the key.
    """
    group = orjson.dumps(line.group, option=orjson.OPT_SORT_KEYS).decode() if line.group else None
    return (line.kind, line.subscription_id, line.plan_code, line.metric, group)


@dataclass(frozen=True)
class DraftCorrection:
    """A correction document: delta lines against the closed invoice and its closed corrections."""

    tenant_id: str
    corrects_invoice_id: int
    kind: str  # adjustment (total >= 0) | credit_note (total < 0)
    currency: str
    total: Decimal
    lines: tuple[DraftLine, ...]


class _Billed(NamedTuple):
    first: BilledLine
    quantity: Decimal
    included: Decimal
    billable_quantity: Decimal
    amount: Decimal


def compute_correction(
    rerated: DraftInvoice, corrects_invoice_id: int, billed: Sequence[BilledLine]
) -> DraftCorrection | None:
    """The correction that makes billed + correction equal the re-rated invoice; None if equal.

    `billed`: the lines of the closed invoice and of its closed corrections. Lines are
    matched by `line_key`; every number on a correction line is the re-rated value minus
    the sum billed so far (quantity, included, billable quantity and amount), so billed
    lines plus correction lines add up to the re-rated invoice. A line appears only when
    its amount changes (a new line, a changed one, or one that is gone: amount -billed).
    Kind: `credit_note` when the total is negative, else `adjustment` (a zero total with
    lines that moved in opposite directions is an adjustment).

    Worked example: closed invoice api.calls 1901 billable, 19.01; 100 late calls re-rate
    it to 2001, 20.01 -> one adjustment line: quantity +100, billable +100, amount +1.00.
    """
    so_far: dict[LineKey, _Billed] = {}
    for b in billed:
        if b.kind not in RERATED_KINDS:
            continue
        key = line_key(b)
        prev = so_far.get(key)
        if prev is None:
            so_far[key] = _Billed(b, b.quantity, b.included, b.billable_quantity, b.amount)
        else:
            so_far[key] = _Billed(
                prev.first,
                prev.quantity + b.quantity,
                prev.included + b.included,
                prev.billable_quantity + b.billable_quantity,
                prev.amount + b.amount,
            )
    # NOTE: stored amounts read back at NUMERIC(24, 6)'s scale; show them at the currency's
    scale = quantum(rerated.currency)
    so_far = {k: v._replace(amount=v.amount.quantize(scale)) for k, v in so_far.items()}
    lines: list[DraftLine] = []
    seen: set[LineKey] = set()
    for new in rerated.lines:
        key = line_key(new)
        seen.add(key)
        prev = so_far.get(key)
        before = prev.amount if prev else ZERO
        if new.amount == before:
            continue
        lines.append(_delta_line(len(lines) + 1, new, prev))
    for key, prev in so_far.items():
        if key in seen or prev.amount == 0:
            continue
        lines.append(_removed_line(len(lines) + 1, prev))
    if not lines:
        return None
    total = ZERO
    for li in lines:
        total = PRICING_CONTEXT.add(total, li.amount)
    return DraftCorrection(
        tenant_id=rerated.tenant_id,
        corrects_invoice_id=corrects_invoice_id,
        kind="credit_note" if total < 0 else "adjustment",
        currency=rerated.currency,
        total=total,
        lines=tuple(lines),
    )


def _numbers(x: _Billed | DraftLine | None) -> dict[str, str]:
    if x is None:
        return {"quantity": "0", "included": "0", "billable_quantity": "0", "amount": "0"}
    return {
        "quantity": str(x.quantity),
        "included": str(x.included),
        "billable_quantity": str(x.billable_quantity),
        "amount": str(x.amount),
    }


def _delta_line(line_no: int, new: DraftLine, prev: _Billed | None) -> DraftLine:
    sub = PRICING_CONTEXT.subtract
    billed_amount = prev.amount if prev else ZERO
    return new._replace(
        line_no=line_no,
        description=f"{new.description}; billed so far {billed_amount}, now {new.amount}",
        quantity=sub(new.quantity, prev.quantity) if prev else new.quantity,
        included=sub(new.included, prev.included) if prev else new.included,
        billable_quantity=(
            sub(new.billable_quantity, prev.billable_quantity) if prev else new.billable_quantity
        ),
        amount=sub(new.amount, billed_amount),
        breakdown={
            "correction": {"billed_so_far": _numbers(prev), "rerated": _numbers(new)},
            "rerated_breakdown": dict(new.breakdown),
        },
    )


def _removed_line(line_no: int, prev: _Billed) -> DraftLine:
    b = prev.first
    return DraftLine(
        line_no=line_no,
        kind=b.kind,
        subscription_id=b.subscription_id,
        plan_code=b.plan_code,
        metric=b.metric,
        description=f"{b.description}; billed so far {prev.amount}, now 0 (no longer billed)",
        window_start=b.window_start,
        window_end=b.window_end,
        quantity=-prev.quantity,
        included=-prev.included,
        billable_quantity=-prev.billable_quantity,
        pricing_model=b.pricing_model,
        amount=-prev.amount,
        breakdown={"correction": {"billed_so_far": _numbers(prev), "rerated": _numbers(None)}},
        group=b.group,
    )
