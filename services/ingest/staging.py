"""Staging an ingest run: find the new landing files, then file by file (and the pushed
events) validate, dedupe and write the new events to the lake (not yet visible: the commit
lists them in the manifest)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.events import ACCEPTED_SCHEMA, RejectReason
from services.ingest import lake
from services.ingest.dedupe import KEY, DedupeResult, dedupe_events, key_hashes, versions_of_keys
from services.ingest.readers import (
    FileValidation,
    LandingFile,
    UnreadableFile,
    accepted_parts,
    discover_files,
    raw_text_of_lines,
    rows_of,
    try_stream_event_file,
)
from tallyflow.core import storage
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


def new_landing_files(
    conn: sa.Connection, roots: list[str]
) -> tuple[list[LandingFile], int, list[str]]:
    """New usage files under the roots; files whose content was ingested are skipped."""
    files, ignored = discover_files(roots)
    unique: dict[str, LandingFile] = {}
    for f in files:
        unique.setdefault(f.sha256, f)  # the same content twice in one drop: read once
    hashes = {"hashes": list(unique)}
    known = set(conn.execute(sql("ingest/select_ingested_file_hashes"), hashes).scalars())
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
                "source": f.path,
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


class LakeStager:
    """Dedupes each part (a file, then the pushed events) against the committed lake and
    the parts before it, and writes new events to the lake in slices of LAKE_SLICE_ROWS.

    NOTE: memory is bounded by one part, one slice and a 64-bit hash per new event of the
    run, not by the run. A part's keys whose hash the run has seen are looked up exactly in
    the slice in memory and the run's lake files written so far (rare: a repeat across
    files, or a hash collision, which the exact lookup tells apart).
    """

    LAKE_SLICE_ROWS = 2_000_000

    def __init__(self, lake_root: str | Path, run_id: uuid.UUID, committed: list[str]) -> None:
        self.lake_root, self.run_id, self.committed = os.fspath(lake_root), run_id, committed
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


ValidateFiles = Callable[[list[LandingFile], dt.datetime], Iterable[FileValidation]]


def validate_in_process(files: list[LandingFile], now: dt.datetime) -> Iterator[FileValidation]:
    """Read and validate the files one at a time, in order, in this process (each in
    batches: services/ingest/readers.py `stream_event_file`)."""
    for f in files:
        yield try_stream_event_file(f.path, now)


def stage_events(
    engine: Engine,
    lake_root: str | Path,
    files: list[LandingFile],
    now: dt.datetime,
    run_id: uuid.UUID,
    *,
    drain_inbox: bool,
    validate_files: ValidateFiles = validate_in_process,
) -> Staged:
    """File by file (then the pushed events): validate, dedupe by (tenant_id, event_id)
    against the lake and everything before it, write the new events to the lake (files not
    yet committed). An unreadable file is rejected whole; the others go on.

    `validate_files` yields each file's validation in file order; it may compute them
    elsewhere (a Dask cluster: tallyflow/runtime/dask.py). Dedupe and lake writes stay here,
    in file order, so the outcome does not depend on where validation ran."""
    lake_root = os.fspath(lake_root)
    with engine.connect() as conn:
        committed = lake.absolute(lake_root, lake.committed_lake_files(conn))
    stager = LakeStager(lake_root, run_id, committed)
    staged = Staged(files=[], rejected=pl.DataFrame(schema=REJECTED_SCHEMA))
    rejected: list[pl.DataFrame] = []
    for f, result in zip(files, validate_files(files, now), strict=True):
        outcome = FileOutcome(f)
        staged.files.append(outcome)
        if isinstance(result, UnreadableFile):
            outcome.unreadable = str(result)
            outcome.rows_read = outcome.rejected = 1  # NOTE: the file counts as one row
            rejected.append(_unreadable_row(f, str(result)))
            continue
        crash_point("ingest.validated")
        outcome.rows_read = rows_of(result)
        rejected.append(
            _with_source(result.rejected, f.path, f.sha256).select(REJECTED_SCHEMA.names())
        )
        outcome.rejected = result.rejected.height
        for part in accepted_parts(result):  # NOTE: a big file comes in several parts
            # NOTE: accepted rows drop their raw text (the largest column): only a
            # conflicting duplicate needs it, and `raw_text_of_rows` reads those lines back.
            accepted = _with_source(part, f.path, f.sha256).with_columns(
                pl.lit(None, pl.String).alias("raw"), pl.lit(None, pl.Int64).alias("inbox_id")
            )
            deduped = stager.add(accepted.select(BATCH_SCHEMA.names()))
            conflicts = _conflicts(deduped)
            rejected.append(conflicts)
            outcome.accepted += deduped.new.height
            outcome.duplicates += deduped.duplicates.height
            outcome.rejected += conflicts.height
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
        lines = missing.filter(pl.col("source") == source).get_column("row").to_list()
        try:
            texts.append(
                raw_text_of_lines(source, lines)
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


def quarantine_unreadable_files(quarantine: str | Path, outcomes: list[FileOutcome]) -> None:
    """Keep a copy of each unreadable file, named by its sha256, for inspection (the lake's
    storage: a landing file on local disk is copied into an S3 lake too)."""
    for o in outcomes:
        if o.unreadable:
            target = storage.join(os.fspath(quarantine), _quarantine_name(o.file))
            storage.copy(o.file.path, target)


NAME_MAX = 255  # bytes of a file name on common filesystems (and S3 keys' segments)


def _quarantine_name(f: LandingFile) -> str:
    """`<sha256>-<name>`, the name's middle cut (at a character) to fit NAME_MAX bytes:
    the landing name alone may already use them all."""
    name = f"{f.sha256}-{f.name}"
    if len(name.encode()) <= NAME_MAX:
        return name
    suffix = "".join(Path(f.name).suffixes[-2:])[-40:]
    room = NAME_MAX - len(f.sha256) - len("-~") - len(suffix.encode())
    stem = f.name.encode()[:room].decode("utf-8", "ignore")
    return f"{f.sha256}-{stem}~{suffix}"
