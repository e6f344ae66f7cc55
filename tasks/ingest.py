"""Prefect tasks of the ingest run: discover, read+validate, drain inbox, dedupe, write the
lake, aggregate, and commit everything in one Postgres transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from models.events import ACCEPTED_SCHEMA, RejectReason
from services.ingest import lake
from services.ingest.aggregate import aggregate_usage_days
from services.ingest.dedupe import KEY, DedupeResult, dedupe_events, key_hashes, versions_of_keys
from services.ingest.readers import (
    LandingFile,
    UnreadableFile,
    discover_files,
    read_event_file,
    validate_event_file,
)
from services.ingest.usage_daily import replace_usage_days
from services.job_runs import finish_job_run
from tallyflow.core.db import driver_connection
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import sql

HTTP_SOURCE = "http"

BATCH_SCHEMA = pl.Schema(
    [
        *ACCEPTED_SCHEMA.items(),
        ("raw", pl.String()),
        ("source", pl.String()),
        ("file_sha256", pl.String()),
        ("inbox_id", pl.Int64()),
    ]
)
REJECTED_SCHEMA = pl.Schema(
    [
        ("source", pl.String()),
        ("file_sha256", pl.String()),
        ("row", pl.Int64()),
        ("reason", pl.String()),
        ("detail", pl.String()),
        ("tenant_id", pl.String()),
        ("event_id", pl.String()),
        ("raw", pl.String()),
    ]
)


@dataclass
class FileOutcome:
    file: LandingFile
    rows_read: int = 0
    unreadable: str | None = None
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass
class Staged:
    """What a run staged: per-file outcomes, rejected rows (validation and conflicting
    duplicates, raw text kept), counts, the drained inbox ids and the new lake files (written,
    not yet committed)."""

    files: list[FileOutcome]
    rejected: pl.DataFrame
    accepted: int = 0
    duplicates: int = 0
    inbox_ids: list[int] = field(default_factory=list)
    new_files: list[lake.LakeFile] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.rows_read for f in self.files) + len(self.inbox_ids)


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
    # NOTE (billable metrics, issue 13): {metric code: events whose value it could not
    # read}; empty (and left out of the JSON) when no billable metric is defined.
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


@task(name="discover_landing_files", cache_policy=NO_CACHE)
def discover_landing_files(
    engine: Engine, roots: list[Path]
) -> tuple[list[LandingFile], int, list[Path]]:
    """New usage files under the roots; files whose content was ingested are skipped."""
    files, ignored = discover_files(roots)
    unique: dict[str, LandingFile] = {}
    for f in files:
        unique.setdefault(f.sha256, f)  # the same content twice in one drop: read once
    with engine.connect() as conn:
        known = set(
            conn.execute(
                sql("ingest/select_ingested_file_hashes"), {"hashes": list(unique)}
            ).scalars()
        )
    new = [f for sha, f in unique.items() if sha not in known]
    return new, len(files) - len(new), ignored


def _with_source(frame: pl.DataFrame, source: str, sha: str | None) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(source, pl.String).alias("source"), pl.lit(sha, pl.String).alias("file_sha256")
    )


def _unreadable_row(f: LandingFile, reason: str) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "source": str(f.path),
                "file_sha256": f.sha256,
                "row": None,
                "reason": RejectReason.UNREADABLE_FILE.value,
                "detail": reason,
                "tenant_id": None,
                "event_id": None,
                "raw": "",
            }
        ],
        schema=REJECTED_SCHEMA,
    )


class _LakeStager:
    """Dedupes each part (a file, then the pushed events) against the committed lake and
    the parts before it, and writes new events to the lake in slices of LAKE_SLICE_ROWS.

    NOTE: memory is bounded by one part, one slice and a 64-bit hash per new event of the
    run, not by the run. A part's keys whose hash the run has seen are looked up exactly in
    the slice in memory and the run's lake files written so far (rare: a repeat across
    files, or a hash collision, which the exact lookup tells apart).
    """

    LAKE_SLICE_ROWS = 2_000_000

    def __init__(self, lake_root: Path, run_id: uuid.UUID, committed: list[str]) -> None:
        self.lake_root, self.run_id, self.committed = lake_root, run_id, committed
        self.seen: list[pl.Series] = []
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.slices = 0
        self.new_files: list[lake.LakeFile] = []

    def _prior(self, events: pl.DataFrame) -> pl.DataFrame | None:
        if not self.seen:
            return None
        seen = pl.concat(self.seen)
        self.seen = [seen]
        candidates = events.filter(key_hashes(events).is_in(seen.implode()))
        if candidates.height == 0:
            return None
        written = lake.absolute(self.lake_root, self.new_files)
        return versions_of_keys(candidates.select(*KEY).unique(), written, self.pending)

    def add(self, events: pl.DataFrame) -> DedupeResult:
        result = dedupe_events(events, self.committed, prior=self._prior(events))
        crash_point("ingest.deduped")
        if result.new.height:
            self.seen.append(key_hashes(result.new))
            self.pending.append(result.new)
            self.pending_rows += result.new.height
            if self.pending_rows >= self.LAKE_SLICE_ROWS:
                self.flush()
        return result

    def flush(self) -> list[lake.LakeFile]:
        if self.pending:
            crash_point("ingest.lake_slice")
            events = pl.concat(self.pending, how="vertical_relaxed")
            self.pending, self.pending_rows = [], 0
            name = f"{self.run_id}-{self.slices:05d}"
            self.slices += 1
            self.new_files += lake.write_lake_files(self.lake_root, events, name)
        return self.new_files


def _conflicts(result: DedupeResult) -> pl.DataFrame:
    conflicts = result.conflicts.select(
        "source",
        "file_sha256",
        "row",
        pl.lit(RejectReason.CONFLICTING_DUPLICATE.value).alias("reason"),
        pl.lit("another version of this (tenant_id, event_id) was accepted first").alias("detail"),
        "tenant_id",
        "event_id",
        "raw",
    )
    return raw_text_of_rows(conflicts)


@task(name="stage_new_events", cache_policy=NO_CACHE)
def stage_new_events(
    engine: Engine,
    lake_root: Path,
    files: list[LandingFile],
    now: dt.datetime,
    run_id: uuid.UUID,
    *,
    drain_inbox: bool,
) -> Staged:
    """File by file (then the pushed events): validate, dedupe by (tenant_id, event_id)
    against the lake and everything before it, write the new events to the lake (files not
    yet committed). An unreadable file is rejected whole; the others go on."""
    with engine.connect() as conn:
        committed = lake.absolute(lake_root, lake.committed_lake_files(conn))
    stager = _LakeStager(lake_root, run_id, committed)
    staged = Staged(files=[], rejected=pl.DataFrame(schema=REJECTED_SCHEMA))
    rejected: list[pl.DataFrame] = []
    for f in files:
        outcome = FileOutcome(f)
        staged.files.append(outcome)
        try:
            result = validate_event_file(f.path, now)
        except UnreadableFile as exc:
            outcome.unreadable = str(exc)
            outcome.rows_read = outcome.rejected = 1  # NOTE: the file counts as one row
            rejected.append(_unreadable_row(f, str(exc)))
            continue
        crash_point("ingest.validated")
        outcome.rows_read = result.accepted.height + result.rejected.height
        # NOTE: accepted rows drop their raw text (the largest column): only a conflicting
        # duplicate needs it, and `raw_text_of_rows` reads those few lines back.
        accepted = _with_source(result.accepted, str(f.path), f.sha256).with_columns(
            pl.lit(None, pl.String).alias("raw"), pl.lit(None, pl.Int64).alias("inbox_id")
        )
        deduped = stager.add(accepted.select(BATCH_SCHEMA.names()))
        conflicts = _conflicts(deduped)
        rejected += [
            _with_source(result.rejected, str(f.path), f.sha256).select(REJECTED_SCHEMA.names()),
            conflicts,
        ]
        outcome.accepted = deduped.new.height
        outcome.duplicates = deduped.duplicates.height
        outcome.rejected = result.rejected.height + conflicts.height
        staged.accepted += outcome.accepted
        staged.duplicates += outcome.duplicates
    if drain_inbox:
        pushed = pushed_events(engine)
        if pushed.height:
            staged.inbox_ids = pushed.get_column("inbox_id").to_list()
            deduped = stager.add(pushed)
            rejected.append(_conflicts(deduped))
            staged.accepted += deduped.new.height
            staged.duplicates += deduped.duplicates.height
    staged.new_files = stager.flush()
    staged.rejected = pl.concat([staged.rejected, *rejected], how="vertical_relaxed").cast(
        REJECTED_SCHEMA
    )
    return staged


def pushed_events(engine: Engine) -> pl.DataFrame:
    """Undrained inbox events (validated when pushed) as batch rows, in arrival order."""
    with engine.connect() as conn:
        rows = conn.execute(sql("ingest/select_undrained_inbox_events")).mappings().all()
    if not rows:
        return pl.DataFrame(schema=BATCH_SCHEMA)
    frame = pl.DataFrame([dict(r) for r in rows]).with_columns(
        pl.col("occurred_at").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
    )
    return frame.select(
        pl.col("id").alias("row"),
        "event_id",
        "tenant_id",
        "metric",
        "quantity_micros",
        "occurred_at",
        pl.col("occurred_at").dt.date().alias("usage_date"),
        "properties",
        pl.struct("tenant_id", "event_id", "metric", "occurred_at", "quantity_micros")
        .struct.json_encode()
        .alias("raw"),
        pl.lit(HTTP_SOURCE).alias("source"),
        pl.lit(None, pl.String).alias("file_sha256"),
        pl.col("id").alias("inbox_id"),
    ).cast(BATCH_SCHEMA)


def raw_text_of_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """Fill `raw` of rows that lack it by reading their files' lines back (rare: conflicts)."""
    missing = rows.filter(pl.col("raw").is_null() & pl.col("file_sha256").is_not_null())
    if missing.height == 0:
        return rows
    texts = []
    for source in missing.get_column("source").unique().to_list():
        try:
            texts.append(
                read_event_file(Path(source))
                .select("row", pl.col("raw").alias("_raw"))
                .with_columns(pl.lit(source).alias("source"))
            )
        except (UnreadableFile, OSError):
            continue  # the file went away mid-run: the row keeps file and line number
    if not texts:
        return rows
    found = pl.concat(texts)
    return (
        rows.join(found, on=["source", "row"], how="left", maintain_order="left")
        .with_columns(pl.coalesce("raw", "_raw").alias("raw"))
        .drop("_raw")
    )


@task(name="aggregate_touched_days", cache_policy=NO_CACHE)
def aggregate_touched_days(
    engine: Engine, lake_root: Path, new_files: list[lake.LakeFile]
) -> tuple[list[dt.date], pl.DataFrame]:
    """Recompute the days this run touched from committed + new lake files."""
    days = sorted({f.usage_date for f in new_files})
    if not days:
        return [], aggregate_usage_days([])
    with engine.connect() as conn:
        committed = lake.committed_lake_files(conn, days)
    files = lake.absolute(lake_root, committed + new_files)
    return days, aggregate_usage_days(files)


def _copy_rejected(conn: sa.Connection, run_id: uuid.UUID, rejected: pl.DataFrame) -> None:
    if rejected.height == 0:
        return
    raw_conn = driver_connection(conn)
    columns = "run_id, source, file_sha256, line_no, reason, detail, tenant_id, event_id, raw"
    with raw_conn.cursor().copy(f"COPY rejected_rows ({columns}) FROM STDIN") as copy:
        for r in rejected.iter_rows(named=True):
            copy.write_row(
                (
                    run_id,
                    r["source"],
                    r["file_sha256"],
                    r["row"],
                    r["reason"],
                    _clean_text(r["detail"]),
                    _clean_text(r["tenant_id"]),
                    _clean_text(r["event_id"]),
                    (r["raw"] or "").encode("utf-8", "surrogateescape"),
                )
            )


def _clean_text(value: str | None) -> str | None:
    """Postgres text cannot hold NUL; the exact bytes are kept in `raw`."""
    return value.replace("\x00", "\\u0000") if value is not None else None


def _file_counts(outcomes: list[FileOutcome]) -> list[dict[str, Any]]:
    return [
        {
            "sha256": o.file.sha256,
            "path": str(o.file.path),
            "size_bytes": o.file.size_bytes,
            "status": "quarantined" if o.unreadable else "ingested",
            "reason": RejectReason.UNREADABLE_FILE.value if o.unreadable else None,
            "rows_read": o.rows_read,
            "rows_accepted": o.accepted,
            "rows_duplicate": o.duplicates,
            "rows_rejected": o.rejected,
        }
        for o in outcomes
    ]


def quarantine_unreadable_files(quarantine: Path, outcomes: list[FileOutcome]) -> None:
    """Keep a copy of each unreadable file, named by its sha256, for inspection."""
    for o in outcomes:
        if o.unreadable:
            quarantine.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(o.file.path, quarantine / f"{o.file.sha256}-{o.file.path.name}")


@task(name="commit_ingest_run", cache_policy=NO_CACHE)
def commit_ingest_run(
    engine: Engine,
    run_id: uuid.UUID,
    staged: Staged,
    days: list[dt.date],
    daily: pl.DataFrame,
    skipped_files: int,
    ignored_files: list[Path],
    refresh_quotas: Any,
    refresh_metrics: Any = None,
) -> IngestSummary:
    """One transaction: quarantine, file ledger, lake manifest, inbox drained, usage days,
    quota refresh, job run. Before it commits, nothing of the run is visible."""
    reasons = Counter(staged.rejected.get_column("reason").to_list())
    examples: dict[str, str] = {}
    for r in staged.rejected.unique("reason", keep="first", maintain_order=True).iter_rows(
        named=True
    ):
        examples[r["reason"]] = (r["raw"] or "")[:300]
    summary = IngestSummary(
        run_id=str(run_id),
        files=len(staged.files),
        skipped_files=skipped_files,
        rows=staged.rows,
        accepted=staged.accepted,
        duplicates=staged.duplicates,
        rejected=staged.rejected.height,
        rejected_by_reason=dict(sorted(reasons.items())),
        days=[d.isoformat() for d in days],
        examples=examples,
        ignored_files=[str(p) for p in ignored_files],
    )
    if summary.rows != summary.accepted + summary.duplicates + summary.rejected:
        raise AssertionError(f"rows do not add up: {summary}")
    with engine.begin() as conn:
        _copy_rejected(conn, run_id, staged.rejected)
        crash_point("commit.rejected_copied")
        for row in _file_counts(staged.files):
            conn.execute(sql("ingest/insert_ingest_file"), {**row, "run_id": run_id})
        crash_point("commit.ledger_written")
        for f in staged.new_files:
            conn.execute(
                sql("ingest/insert_lake_file"),
                {
                    "path": f.path,
                    "usage_date": f.usage_date,
                    "row_count": f.row_count,
                    "run_id": run_id,
                },
            )
        crash_point("commit.manifest_written")
        if staged.inbox_ids:
            conn.execute(
                sql("ingest/mark_inbox_events_drained"), {"run_id": run_id, "ids": staged.inbox_ids}
            )
        replace_usage_days(conn, daily, days)
        crash_point("commit.usage_replaced")
        if refresh_metrics is not None:  # NOTE (issue 13): billable metrics, before quotas
            refreshed = refresh_metrics(conn, days)
            summary = dataclasses.replace(summary, metric_unreadable=refreshed.unreadable)
        refresh_quotas(conn)
        crash_point("commit.quotas_refreshed")
        finish_job_run(conn, run_id, summary.to_json() | {"examples": examples})
        crash_point("commit.before_commit")
    return summary


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
    if summary.metric_unreadable:  # NOTE (issue 13): values a billable metric skipped
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
