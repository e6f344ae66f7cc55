"""The invoice flows' reports: pure markdown renderers of the artifacts that
flows/close_billing_period.py and flows/finalize_invoices.py publish."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from services.invoicing import FinalizeResult, GenerationResult, LateUsage, UnsubscribedUsage

TOP = 10


def render_invoice_run_report(
    result: GenerationResult,
    unsubscribed: list[UnsubscribedUsage],
    late: list[LateUsage],
    *,
    top: int = TOP,
) -> str:
    """Markdown: counts, totals per currency, top tenants, what could not be billed."""
    out = [
        f"# Invoice run for {result.period.label}",
        "",
        "| generated | created or changed | skipped | closed | removed stale drafts |",
        "|---:|---:|---:|---:|---:|",
        f"| {result.generated} | {result.updated} | {result.skipped} | {result.closed}"
        f" | {result.removed} |",
        "",
        "## Total per currency",
        "",
        "| currency | invoices | total |",
        "|---|---:|---:|",
    ]
    counts: dict[str, int] = {}
    for inv in result.invoices:
        counts[inv.currency] = counts.get(inv.currency, 0) + 1
    for currency, total in result.totals_by_currency().items():
        out.append(f"| {currency} | {counts[currency]} | {total} |")
    if not result.invoices:
        out.append("| - | 0 | 0 |")

    out += ["", f"## Top {top} tenants by amount", "", "| tenant | currency | total | invoice |"]
    out.append("|---|---|---:|---:|")
    ranked = sorted(result.invoices, key=lambda i: (-i.total, i.tenant_id))[:top]
    out += [f"| {i.tenant_id} | {i.currency} | {i.total} | {i.invoice_id} |" for i in ranked]

    if result.skipped_tenants:
        out += ["", "## Skipped tenants", "", "| tenant | reason | detail |", "|---|---|---|"]
        out += _capped(
            [
                f"| {t} | {reason} | {result.skip_messages.get(t, '')} |"
                for t, reason in sorted(result.skipped_tenants.items())
            ],
            top,
        )

    out += ["", f"## Corrections of closed invoices ({len(result.corrections)})", ""]
    if result.corrections:
        out += [
            "| tenant | kind | corrects invoice | draft | total | written by this run |",
            "|---|---|---:|---:|---:|---|",
        ]
        out += _capped(
            [
                f"| {c.tenant_id} | {c.kind} | {c.corrects_invoice_id} | {c.invoice_id} |"
                f" {c.total} {c.currency} | {'yes' if c.changed else 'no (up to date)'} |"
                for c in result.corrections
            ],
            top,
        )
    else:
        out.append("None: every closed invoice of the period matches its re-rated usage.")

    out += ["", f"## Tenants with usage but no subscription ({len(unsubscribed)})", ""]
    if unsubscribed:
        out += ["| tenant | metrics | usage days | events |", "|---|---:|---:|---:|"]
        out += _capped(
            [
                f"| {u.tenant_id} | {u.metrics} | {u.usage_days} | {u.events} |"
                for u in unsubscribed
            ],
            top,
        )
    else:
        out.append("None.")

    out += ["", f"## Late usage in already-closed periods ({len(late)})", ""]
    if late:
        out += [
            "| tenant | period | invoice | metric | usage days | quantity | last updated |",
            "|---|---|---|---|---:|---:|---|",
        ]
        out += _capped(
            [
                f"| {x.tenant_id} | {x.period_start:%Y-%m} | {x.number} | {x.metric} |"
                f" {x.usage_days} | {x.quantity_sum} | {x.last_updated_at:%Y-%m-%d %H:%M} |"
                for x in late
            ],
            top,
        )
        out.append("")
        out.append(
            "Closed invoices never change: a run over their period (generate or finalize)"
            " bills the difference on a correction (adjustment or credit note)."
        )
    else:
        out.append("None.")
    return "\n".join(out) + "\n"


def _capped(rows: list[str], top: int) -> list[str]:
    if len(rows) <= top:
        return rows
    return [*rows[:top], f"| ... {len(rows) - top} more | |"]


def totals_json(totals: Mapping[str, Decimal]) -> dict[str, str]:
    return {currency: str(total) for currency, total in totals.items()}


def render_finalize_report(result: FinalizeResult, *, top: int = TOP) -> str:
    """Markdown: periods finalized, documents closed, corrections, tenants not priceable."""
    out = [
        f"# Finalize as of {result.as_of}",
        "",
        f"Periods: {', '.join(p.label for p in result.periods) or 'none due'}; "
        f"documents closed: {result.closed}.",
    ]
    for run in result.runs:
        out += ["", f"## {run.period.label}", ""]
        out.append(
            f"{run.generated} drafts refreshed ({run.updated} changed), "
            f"{len(run.corrections)} corrections, {run.skipped} tenants skipped."
        )
        for c in run.corrections[:top]:
            out.append(
                f"- {c.tenant_id}: {c.kind} {c.total} {c.currency} of invoice"
                f" {c.corrects_invoice_id}"
            )
        for t, reason in list(run.skipped_tenants.items())[:top]:
            out.append(f"- skipped {t}: {reason} {run.skip_messages.get(t, '')}".rstrip())
    return "\n".join(out) + "\n"
