"""The invoice run's report: a markdown artifact in the Prefect UI (rendered by a pure function)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from services.invoicing import GenerationResult, LateUsage, UnsubscribedUsage

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
        out += ["", "## Skipped tenants", "", "| tenant | reason |", "|---|---|"]
        out += _capped(
            [f"| {t} | {reason} |" for t, reason in sorted(result.skipped_tenants.items())], top
        )

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
            "Closed invoices never change: bill these as a correction (void and regenerate)."
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


@task(name="publish_invoice_run_artifact", cache_policy=NONE)
def publish_invoice_run_artifact(markdown: str, period_label: str) -> None:
    """Attach the report to the flow run (key: invoice-run-YYYY-MM)."""
    create_markdown_artifact(
        markdown=markdown,
        key=f"invoice-run-{period_label}",
        description=f"Invoice run for {period_label}",
    )
