"""What an ingest run reports: the `--json` summary and the Prefect artifact's Markdown."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IngestSummary:
    run_id: str
    files: int
    skipped_files: int
    rows: int
    accepted: int
    duplicates: int
    rejected: int
    rejected_by_reason: dict[str, int]
    days: list[str]
    examples: dict[str, str]
    ignored_files: list[str]
    # NOTE (billable metrics): {metric code: events whose value it could not read}; empty
    # (and left out of the JSON) when no billable metric is defined.
    metric_unreadable: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The contract's `ingest --json` shape."""
        out: dict[str, Any] = {
            "files": self.files,
            "skipped_files": self.skipped_files,
            "rows": self.rows,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "days": self.days,
        }
        if self.metric_unreadable:
            out["metric_unreadable"] = self.metric_unreadable
        return out


def summary_markdown(title: str, summary: IngestSummary) -> str:
    """A readable run summary for the Prefect artifact."""
    out = io.StringIO()
    out.write(f"# {title}\n\n")
    out.write("| files | skipped files | rows | accepted | duplicates | rejected |\n")
    out.write("|---|---|---|---|---|---|\n")
    out.write(
        f"| {summary.files} | {summary.skipped_files} | {summary.rows} | {summary.accepted} "
        f"| {summary.duplicates} | {summary.rejected} |\n\n"
    )
    if summary.rejected_by_reason:
        out.write("## Rejected rows by reason\n\n| reason | rows | example |\n|---|---|---|\n")
        for reason, count in summary.rejected_by_reason.items():
            example = summary.examples.get(reason, "").replace("|", "\\|").replace("\n", " ")
            out.write(f"| {reason} | {count} | `{example[:120]}` |\n")
        out.write("\n")
    if summary.metric_unreadable:  # values a billable metric skipped
        out.write("## Billable metrics: unreadable values (skipped)\n\n| metric | events |\n")
        out.write("|---|---|\n")
        for code, count in summary.metric_unreadable.items():
            out.write(f"| {code} | {count} |\n")
        out.write("\n")
    days = ", ".join(summary.days) if summary.days else "none"
    out.write(f"**Days re-aggregated:** {days}\n\n")
    if summary.ignored_files:
        out.write(f"**Ignored (not a usage file type):** {', '.join(summary.ignored_files)}\n")
    out.write(f"\nRun id `{summary.run_id}` (table job_runs; rejected rows in rejected_rows).\n")
    return out.getvalue()
