"""Staging an ingest run: find the new landing files, then file by file (and the pushed
events) validate, dedupe and write the new events to the lake (not yet visible: the commit
lists them in the manifest)."""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.events import ACCEPTED_SCHEMA, RejectReason
from services.ingest import lake
from services.ingest.dedupe import (
    INDEX_SCHEMA,
    KEY,
    KEY_HASH,
    DedupeResult,
    IndexWriter,
    KeyIndex,
    index_lake_files,
    key_hashes,
    split_repeats,
    versions_of_keys,
)
from services.ingest.discovery import LandingFile
from services.ingest.discovery import (
    new_landing_files as new_landing_files,  # NOTE: re-exported (tasks import it here)
)
from services.ingest.readers import (
    FileValidation,
    UnreadableFile,
    accepted_parts,
    raw_text_of_lines,
    rows_of,
    try_stream_event_file,
)
from tallyflow.core import storage
from tallyflow.core.faults import crash_point
from tallyflow.core.sqlfiles import sql

HTTP_SOURCE = "http"


@dataclass(frozen=True)
class StageLimits:
    """Tunables of a run's staging (settings: TALLYFLOW_INBOX_CHUNK_EVENTS,
    TALLYFLOW_LAKE_COMPACT_DAY_FILES)."""

    inbox_chunk_events: int = 50_000  # pushed events read (and deduped) at a time
    compact_day_files: int = 16  # a touched day with more lake files is compacted into one


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
    duplicates, raw text kept), counts, the drained inbox ids, the lake files to list (written,
    not yet committed), the committed or written files a compaction replaced (`retired`) and
    the writer holding the key index rows of the run's new events in its open transaction,
    which the commit continues (`index_writer`; None when nothing was staged)."""

    files: list[FileOutcome]
    rejected: pl.DataFrame
    accepted: int = 0
    duplicates: int = 0
    inbox_ids: pl.Series = field(default_factory=lambda: pl.Series("inbox_id", [], pl.Int64))
    new_files: list[lake.LakeFile] = field(default_factory=list)
    retired: list[lake.LakeFile] = field(default_factory=list)
    index_writer: IndexWriter | None = None

    @property
    def rows(self) -> int:
        return sum(f.rows_read for f in self.files) + self.inbox_ids.len()


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
    """Dedupes each part (a file, then chunks of pushed events) against the committed lake and
    the parts before it, and writes new events to the lake in slices of LAKE_SLICE_ROWS.

    NOTE: memory is bounded by one part, one slice and the key index row (a 64-bit hash and
    a day) of each new event of the run, not by the run (nor by the lake: the committed
    lake is asked through its key index). A part's keys whose hash the run has seen are
    looked up exactly in the slice in memory and the run's lake files written so far
    (rare: a repeat across files, or a hash collision, which the exact lookup tells apart).
    """

    LAKE_SLICE_ROWS = 500_000

    def __init__(
        self, lake_root: str | Path, run_id: uuid.UUID, index: KeyIndex, writer: IndexWriter
    ) -> None:
        self.lake_root, self.run_id, self.index = os.fspath(lake_root), run_id, index
        self.writer = writer
        # NOTE: the index rows of the run's new events, kept sorted by hash (merged part by
        # part): the repeat screen is a binary search in them.
        self.index_rows = pl.DataFrame(schema=INDEX_SCHEMA)
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.slices = 0
        self.new_files: list[lake.LakeFile] = []

    def _prior(self, events: pl.DataFrame) -> pl.DataFrame | None:
        seen = self.index_rows.get_column(KEY_HASH)
        if seen.len() == 0:
            return None
        hashes = events.get_column(KEY_HASH)
        at = seen.search_sorted(hashes, side="left").clip(upper_bound=seen.len() - 1)
        candidates = events.filter(seen.gather(at) == hashes)
        if candidates.height == 0:
            return None
        written = lake.absolute(self.lake_root, self.new_files)
        return versions_of_keys(candidates.select(*KEY).unique(), written, self.pending)

    def add(self, events: pl.DataFrame) -> DedupeResult:
        """Dedupe a part against the key index (the committed lake), the run's earlier
        parts and itself (dedupe.split_repeats)."""
        events = events.with_columns(key_hashes(events))
        keys = events.select(*KEY, KEY_HASH).unique(KEY, maintain_order=True)
        known = [self.index.versions(keys)]
        prior = self._prior(events)
        if prior is not None:
            # NOTE: a key is in the index or in `prior`, never both (prior holds only events
            # that were new to the index)
            known.append(prior)
        result = split_repeats(events, pl.concat(known, how="vertical_relaxed"))
        crash_point("ingest.deduped")
        if result.new.height:
            rows = result.new.select(INDEX_SCHEMA.names()).sort(KEY_HASH)
            self.index_rows = self.index_rows.merge_sorted(rows, KEY_HASH)
            self.writer.add(rows)
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
    limits: StageLimits | None = None,
) -> Staged:
    """File by file (then the pushed events, chunk by chunk): validate, dedupe by
    (tenant_id, event_id) against the key index and everything before it, write the new
    events to the lake (files not yet committed); then compact the touched days that have
    more than `limits.compact_day_files` files. An unreadable file is rejected whole; the
    others go on.

    `validate_files` yields each file's validation in file order; it may compute them
    elsewhere (a Dask cluster: tallyflow/runtime/dask.py). Dedupe and lake writes stay here,
    in file order, so the outcome does not depend on where validation ran."""
    limits = limits or StageLimits()
    lake_root = os.fspath(lake_root)
    with engine.connect() as conn:
        # NOTE: under the usage lock, before any lake write: manifest files listed before
        # the key index existed are indexed (one transaction). (Files retired by a
        # compaction whose run crashed after its commit went to the trash already: the
        # run's lake guard, services/lake_guard.py `sweep_failed_run_files`, moved them.)
        index_unindexed_lake_files(conn, lake_root)
    writer = IndexWriter(engine)
    try:
        with engine.connect() as index_conn:
            stager = LakeStager(lake_root, run_id, KeyIndex(index_conn, lake_root), writer)
            staged = _stage_parts(engine, stager, files, now, drain_inbox, validate_files, limits)
        written = stager.flush()
        staged.index_writer = writer
        with engine.connect() as conn:
            staged.new_files, staged.retired = compact_days(
                conn, lake_root, run_id, written, limits.compact_day_files
            )
    except BaseException:
        writer.close()
        raise
    return staged


def _stage_parts(
    engine: Engine,
    stager: LakeStager,
    files: list[LandingFile],
    now: dt.datetime,
    drain_inbox: bool,
    validate_files: ValidateFiles,
    limits: StageLimits,
) -> Staged:
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
        ids: list[pl.Series] = []
        for pushed in pushed_event_chunks(engine, limits.inbox_chunk_events):
            ids.append(pushed.get_column("inbox_id"))
            deduped = stager.add(pushed)
            rejected.append(_conflicts(deduped))
            staged.accepted += deduped.new.height
            staged.duplicates += deduped.duplicates.height
        if ids:
            staged.inbox_ids = pl.concat(ids)
    staged.rejected = pl.concat([staged.rejected, *rejected], how="vertical_relaxed").cast(
        REJECTED_SCHEMA
    )
    return staged


def index_unindexed_lake_files(conn: sa.Connection, lake_root: str) -> int:
    """Put the keys of manifest files listed before the key index held them (migrations 0008
    and 0014) into it, in one transaction (a crash leaves them all unindexed). Returns the
    events."""
    paths = list(conn.execute(sql("ingest/select_unindexed_lake_files")).scalars())
    conn.commit()
    if not paths:
        return 0
    with conn.begin():
        rows = index_lake_files(conn, [storage.join(lake_root, p) for p in paths])
        conn.execute(sql("ingest/mark_lake_files_indexed"), {"paths": paths})
    return rows


def _read_lake_file(url: str) -> pl.DataFrame:
    return pl.read_parquet(url if storage.is_local(url) else io.BytesIO(storage.read_bytes(url)))


def compact_days(
    conn: sa.Connection,
    lake_root: str,
    run_id: uuid.UUID,
    written: list[lake.LakeFile],
    max_files: int,
) -> tuple[list[lake.LakeFile], list[lake.LakeFile]]:
    """(files to list, files retired): each day the run wrote to that then has more than
    `max_files` files (committed + this run's) is rewritten as one file, its rows in the
    files' path order (committed first, then this run's). Nothing is visible until the
    commit lists the new file and unlists the old ones; the old ones go to the trash after.

    NOTE: a compaction reads its whole day into memory (one day's events)."""
    days = sorted({f.usage_date for f in written})
    if not days:
        return written, []
    committed: dict[dt.date, list[lake.LakeFile]] = {d: [] for d in days}
    for f in lake.committed_lake_files(conn, days):
        committed[f.usage_date].append(f)
    conn.commit()
    keep: list[lake.LakeFile] = []
    retired: list[lake.LakeFile] = []
    for day in days:
        mine = sorted((f for f in written if f.usage_date == day), key=lambda f: f.path)
        old = committed[day] + mine
        if len(old) <= max_files:
            keep += mine
            continue
        crash_point("lake.compacting")
        frame = pl.concat(
            [_read_lake_file(u) for u in lake.absolute(lake_root, old)], how="vertical_relaxed"
        )
        keep += lake.write_lake_files(lake_root, frame, f"{run_id}-compact")
        retired += old
        crash_point("lake.compacted")
    return keep, retired


def pushed_event_chunks(engine: Engine, chunk_events: int) -> Iterator[pl.DataFrame]:
    """Undrained inbox events (validated when pushed) as batch rows, in arrival order,
    `chunk_events` at a time (keyset pages by id: memory is one chunk)."""
    after = 0
    while True:
        with engine.connect() as conn:
            rows = (
                conn.execute(
                    sql("ingest/select_undrained_inbox_events"),
                    {"after": after, "limit": chunk_events},
                )
                .mappings()
                .all()
            )
        if not rows:
            return
        yield _pushed_frame(rows)
        if len(rows) < chunk_events:
            return
        after = rows[-1]["id"]


def _pushed_frame(rows: Iterable[Any]) -> pl.DataFrame:
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
