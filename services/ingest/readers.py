"""Reading usage files into the raw event frame (models.events.RAW_EVENT_SCHEMA + `raw`).

Formats: JSON Lines (.jsonl/.ndjson), CSV with a header, each optionally gzipped, and
Parquet. Every input row keeps its row number and its raw bytes, so a rejected row can be
shown and replayed. A file that cannot be read at all raises UnreadableFile.

Files are read in batches (ReadLimits: about 64 MiB of decompressed bytes, a Parquet row
group), row numbers continuing across batches, so memory does not grow with the file; a
gzip file's output is capped. Whatever goes wrong while reading one file (a reader
library's error, MemoryError, OSError, any exception) makes that file UnreadableFile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import io
import os
import shutil
import tempfile
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import polars as pl

from models.events import (
    ACCEPTED_SCHEMA,
    FIELDS,
    NUMBER,
    OBJECT,
    OTHER,
    RAW_EVENT_SCHEMA,
    STRING,
    ValidationResult,
    event_parser,
    validate_json_lines,
    validate_raw_events,
)
from services.ingest.discovery import file_format
from tallyflow.core import storage
from tallyflow.core.faults import raise_point
from tallyflow.core.sqlfiles import duckdb_sql

BOM: Final = b"\xef\xbb\xbf"
REJECTED: Final = pl.Schema(
    {
        "row": pl.Int64(),
        "event_id": pl.String(),
        "tenant_id": pl.String(),
        "reason": pl.String(),
        "detail": pl.String(),
        "raw": pl.String(),
    }
)


class UnreadableFile(Exception):
    """The file cannot be read at all (corrupt gzip, not Parquet, ...)."""


# --- limits and byte streams ---------------------------------------------------------------


@dataclass(frozen=True)
class ReadLimits:
    """How a landing file is read (tallyflow/core/settings.py `ingest_*`): batches of about
    `batch_bytes`, lines/records of at most `max_line_bytes`, gzip output capped at
    `max_decompressed_bytes`, and `spool_rows` accepted rows of a file in memory."""

    batch_bytes: int = 64 << 20
    max_line_bytes: int = 64 << 20
    max_decompressed_bytes: int = 32 << 30
    spool_rows: int = 500_000

    @classmethod
    def from_settings(cls) -> ReadLimits:
        from tallyflow.core.settings import load_settings

        s = load_settings()
        return cls(
            batch_bytes=s.ingest_batch_bytes,
            max_line_bytes=s.ingest_max_line_bytes,
            max_decompressed_bytes=s.ingest_max_decompressed_bytes,
            spool_rows=s.ingest_spool_rows,
        )


RAW_PREFIX_BYTES: Final = 4096  # raw text kept of a line over the line limit


class _Chunks:
    """The decompressed bytes of a landing file in pieces of at most `size` bytes; a .gz file
    is decompressed as it is read (several members allowed), its output capped."""

    def __init__(self, handle: IO[bytes], gz: bool, limits: ReadLimits) -> None:
        self.handle, self.limits, self.total = handle, limits, 0
        self.gzip: gzip.GzipFile | None = None
        if gz:
            if handle.read(2) != b"\x1f\x8b":
                raise UnreadableFile("not a gzip file (no gzip header)")
            handle.seek(0)
            self.gzip = gzip.GzipFile(fileobj=handle, mode="rb")

    def read(self, size: int) -> bytes:
        if self.gzip is None:
            return self.handle.read(size)
        parts: list[bytes] = []
        want = size
        try:
            while want > 0:
                # NOTE: never more than the cap allows, plus one byte to tell "over".
                room = self.limits.max_decompressed_bytes - self.total + 1
                piece = self.gzip.read(min(want, room, 16 << 20))
                if not piece:
                    break
                self.total += len(piece)
                if self.total > self.limits.max_decompressed_bytes:
                    raise UnreadableFile(
                        "decompressed size over the cap of "
                        f"{self.limits.max_decompressed_bytes:,} bytes "
                        "(TALLYFLOW_INGEST_MAX_DECOMPRESSED_BYTES): not read"
                    )
                parts.append(piece)
                want -= len(piece)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFile(f"not a readable gzip file: {exc}") from exc
        return b"".join(parts)


@contextlib.contextmanager
def _open_chunks(path: str, limits: ReadLimits) -> Iterator[_Chunks]:
    with storage.open_read(path) as handle:
        yield _Chunks(handle, path.lower().endswith(".gz"), limits)


@dataclass(frozen=True)
class _LongLine:
    """A line over the line limit: not parsed; its length and first bytes are kept."""

    prefix: bytes
    size: int


def _pieces(chunks: _Chunks, limits: ReadLimits) -> Iterator[bytes]:
    """The file's bytes, `batch_bytes` at a time, its BOM dropped."""
    piece = chunks.read(limits.batch_bytes)
    if piece.startswith(BOM):
        piece = piece[len(BOM) :]
    while piece:
        yield piece
        piece = chunks.read(limits.batch_bytes)


def _line_chunks(chunks: _Chunks, limits: ReadLimits) -> Iterator[bytes | _LongLine]:
    """Whole lines, about `batch_bytes` at a time (the file's BOM dropped); a line longer
    than `max_line_bytes` comes as a _LongLine, its bytes skipped."""
    carry = b""
    for piece in _pieces(chunks, limits):
        data = carry + piece if carry else piece
        cut = data.rfind(b"\n")
        if cut >= 0:
            yield data[: cut + 1]
            carry = data[cut + 1 :]
            continue
        carry = data
        if len(carry) > limits.max_line_bytes:
            prefix, size = carry[:RAW_PREFIX_BYTES], len(carry)
            carry = b""
            while piece := chunks.read(limits.batch_bytes):
                newline = piece.find(b"\n")
                if newline < 0:
                    size += len(piece)
                    continue
                size += newline
                carry = piece[newline + 1 :]
                break
            yield _LongLine(prefix, size)
    if carry:
        yield carry


def _record_chunks(chunks: _Chunks, limits: ReadLimits) -> Iterator[bytes]:
    """Whole CSV records (a newline inside quotes is not an end), about `batch_bytes` at a
    time, the file's BOM dropped. A record over `max_line_bytes` makes the file unreadable.

    NOTE: a newline ends a record when an even number of quote characters precede it from
    the start of the record (an escaped quote is two quotes)."""
    carry = b""
    for piece in _pieces(chunks, limits):
        data = carry + piece if carry else piece
        cut, end = data.rfind(b"\n"), len(data)
        before = data.count(b'"')  # quote characters in data[:end]
        while cut >= 0:
            before -= data.count(b'"', cut, end)  # now: in data[:cut]
            if before % 2 == 0:
                break
            end, cut = cut, data.rfind(b"\n", 0, cut)
        if cut >= 0:
            yield data[: cut + 1]
            carry = data[cut + 1 :]
            continue
        carry = data
        if len(carry) > limits.max_line_bytes:
            raise UnreadableFile(
                f"a CSV record longer than {limits.max_line_bytes:,} bytes "
                "(TALLYFLOW_INGEST_MAX_LINE_BYTES): an unbalanced quote?"
            )
    if carry:
        yield carry


# --- JSON lines --------------------------------------------------------------------------


def _split_lines(data: bytes, first_row: int = 1) -> pl.DataFrame:
    """(row, text, raw) per non-blank line, rows numbered from `first_row`; text is null
    where the line is not UTF-8 (its `raw` then shows the bytes with backslash escapes)."""
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    frame: pl.DataFrame | None = None
    if b"\x01" not in data and n_lines:
        try:  # NOTE: Polars refuses text that is not UTF-8 (then the slow path below)
            frame = pl.read_csv(
                io.BytesIO(data),
                has_header=False,
                separator="\x01",
                quote_char=None,
                new_columns=["text"],
                schema={"text": pl.String},
                raise_if_empty=False,
            )
        except pl.exceptions.PolarsError:
            frame = None
        if frame is not None and frame.height != n_lines:
            frame = None
        if frame is not None:
            frame = frame.with_columns(pl.col("text").fill_null(""))
            if b"\r" in data:
                frame = frame.with_columns(pl.col("text").str.strip_chars_end("\r"))
    if frame is None:  # slow path: invalid UTF-8, control bytes, odd line endings
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        texts: list[str | None] = []
        for line in lines:
            try:
                texts.append(line.rstrip(b"\r").decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(None)
        raw_lines = pl.Series(
            "raw", [ln.rstrip(b"\r").decode("utf-8", "backslashreplace") for ln in lines]
        )
        frame = pl.DataFrame({"text": pl.Series(texts, dtype=pl.String)}).with_columns(raw_lines)
    else:
        frame = frame.with_columns(pl.col("text").alias("raw"))
    frame = frame.with_row_index("row", offset=first_row).cast({"row": pl.Int64})
    # NOTE: blank lines are not rows (they carry no event), so they are not counted.
    if frame.select(pl.col("text").str.starts_with("{").all()).item():
        return frame
    blank = pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() == "")
    return frame.filter(~blank)


def _long_line(line: _LongLine, row: int, limits: ReadLimits) -> pl.DataFrame:
    """A line over the limit as a line that is no JSON (so malformed_row), with its start."""
    shown = line.prefix.decode("utf-8", "backslashreplace")
    raw = f"{shown}... [{line.size:,} bytes: over the line limit of {limits.max_line_bytes:,}]"
    return pl.DataFrame(
        {"row": [row], "text": [None], "raw": [raw]},
        schema={"row": pl.Int64, "text": pl.String, "raw": pl.String},
    )


def _json_line_batches(chunks: _Chunks, limits: ReadLimits) -> Iterator[pl.DataFrame]:
    """(row, text, raw) frames of the file's lines, line numbers continuing across batches."""
    row = 1
    for piece in _line_chunks(chunks, limits):
        if isinstance(piece, _LongLine):
            yield _long_line(piece, row, limits)
            row += 1
            continue
        lines = _split_lines(piece, row)
        row += piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1)
        if lines.height:
            yield lines


def raw_frame_of_lines(json_lines: pl.DataFrame) -> pl.DataFrame:
    """Raw event frame of JSON lines (row, text, raw) (one JSON parse per line, in DuckDB)."""
    if json_lines.height == 0:
        return pl.DataFrame(schema={**RAW_EVENT_SCHEMA, "raw": pl.String()})
    con = event_parser()
    try:
        con.register("json_lines", json_lines.select("row", "text"))
        frame: pl.DataFrame = con.sql(duckdb_sql("events/extract_json_event_fields")).pl()
    finally:
        con.close()
    frame = frame.cast({"row": pl.Int64})
    if not frame.get_column("row").is_sorted():  # NOTE: a parallel scan may reorder rows
        frame = frame.sort("row")
    return frame.hstack([json_lines.get_column("raw")])  # both in row order


def read_json_lines(data: bytes) -> pl.DataFrame:
    """Raw event frame of a whole JSON Lines payload (tests, small payloads)."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    return raw_frame_of_lines(_split_lines(data))


# --- CSV ---------------------------------------------------------------------------------


def read_csv_rows(data: bytes, first_row: int = 2, header: bytes = b"") -> pl.DataFrame:
    """Raw event frame of a CSV payload: `header` + `data` when a header is given (a batch
    after the first), else `data` starts with its header; records numbered from `first_row`
    (the header is row 1)."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        table = pl.read_csv(
            io.BytesIO(header + data),
            infer_schema=False,
            truncate_ragged_lines=True,
            encoding="utf8-lossy",
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise UnreadableFile(f"not a readable CSV file: {exc}") from exc
    if not table.columns:
        return pl.DataFrame(schema={**RAW_EVENT_SCHEMA, "raw": pl.String()})
    columns = {c.strip().lower(): c for c in table.columns}
    exprs: list[pl.Expr] = []
    for field in FIELDS:
        value: pl.Expr = pl.lit(None, pl.String)
        if field in columns:
            cell = pl.col(columns[field])
            value = pl.when(cell.str.strip_chars() != "").then(cell)
        tag = STRING if field != "properties" else OBJECT
        exprs += [
            value.alias(field),
            pl.when(value.is_not_null()).then(pl.lit(tag)).alias(f"{field}_type"),
        ]
    raw = pl.concat_str([pl.col(c).fill_null("") for c in table.columns], separator=",")
    frame = table.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_row).alias("row"),
        pl.lit(True).alias("is_object"),
        *exprs,
        raw.alias("raw"),
    )
    return _check_properties_are_objects(frame)


def _first_record(data: bytes) -> int:
    """Length of the first CSV record of `data` (its newline included), or of all of it."""
    start = 0
    while (newline := data.find(b"\n", start)) >= 0:
        if data.count(b'"', 0, newline) % 2 == 0:
            return newline + 1
        start = newline + 1
    return len(data)


def _csv_batches(chunks: _Chunks, limits: ReadLimits) -> Iterator[pl.DataFrame]:
    """Raw event frames of the file's records, record numbers continuing across batches."""
    header: bytes | None = None
    row = 2
    for piece in _record_chunks(chunks, limits):
        if header is None:
            header = piece[: _first_record(piece)]
            piece = piece[len(header) :]
            if not piece.strip():
                continue
        frame = read_csv_rows(piece, row, header)
        row += frame.height
        if frame.height:
            yield frame


def _check_properties_are_objects(frame: pl.DataFrame) -> pl.DataFrame:
    """Tag a text `properties` cell as 'object' only when it is a JSON object."""
    if frame.filter(pl.col("properties").is_not_null()).height == 0:
        return frame
    props = frame.select("row", "properties")
    con = event_parser()
    try:
        con.register("props", props)
        tags = con.sql(
            "SELECT row, try(json_type(properties)) AS t FROM props WHERE properties IS NOT NULL"
        ).pl()
    finally:
        con.close()
    tags = tags.cast({"row": pl.Int64}).with_columns(
        pl.when(pl.col("t") == "OBJECT").then(pl.lit(OBJECT)).otherwise(pl.lit(OTHER)).alias("t")
    )
    return (
        frame.join(tags, on="row", how="left", maintain_order="left")
        .with_columns(pl.coalesce("t", "properties_type").alias("properties_type"))
        .drop("t")
    )


def _parquet_field(table: pl.DataFrame, field: str) -> list[pl.Expr]:
    if field not in table.columns:
        return [
            pl.lit(None, pl.String).alias(field),
            pl.lit(None, pl.String).alias(f"{field}_type"),
        ]
    dtype = table.schema[field]
    col = pl.col(field)
    if isinstance(dtype, pl.Categorical | pl.Enum):  # dictionary-encoded text
        col, dtype = col.cast(pl.String), pl.String()
    if dtype == pl.String:
        text, tag = col, STRING
    elif dtype.is_numeric():
        text, tag = col.cast(pl.String), NUMBER
    elif isinstance(dtype, pl.Datetime):
        fmt = "%Y-%m-%dT%H:%M:%S%.f%:z" if dtype.time_zone else "%Y-%m-%dT%H:%M:%S%.f"
        text, tag = col.dt.to_string(fmt), STRING
    elif isinstance(dtype, pl.Struct) and field == "properties":
        text, tag = col.struct.json_encode(), OBJECT
    else:
        text, tag = col.cast(pl.String, strict=False), OTHER
    return [
        text.alias(field),
        pl.when(col.is_not_null()).then(pl.lit(tag)).alias(f"{field}_type"),
    ]


PARQUET_BATCH_ROWS: Final = 250_000


def _parquet_rows(table: pl.DataFrame, first_row: int) -> pl.DataFrame:
    try:
        raw = pl.struct(pl.all()).struct.json_encode()
        return table.select(
            (pl.int_range(pl.len(), dtype=pl.Int64) + first_row).alias("row"),
            pl.lit(True).alias("is_object"),
            *[e for field in FIELDS for e in _parquet_field(table, field)],
            raw.alias("raw"),
        )
    except pl.exceptions.PolarsError as exc:
        raise UnreadableFile(f"Parquet columns cannot be read as events: {exc}") from exc


def _parquet_batches(handle: IO[bytes]) -> Iterator[pl.DataFrame]:
    """Raw event frames of a Parquet file, a row group (or PARQUET_BATCH_ROWS) at a time;
    rows count from 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(handle)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableFile(f"not a readable Parquet file: {exc}") from exc
    row = 1
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise UnreadableFile(f"not a readable Parquet file: {exc}") from exc
        if batch is None:
            return
        table = pl.from_arrow(batch)
        assert isinstance(table, pl.DataFrame)
        yield _parquet_rows(table, row)
        row += table.height


def read_parquet_rows(path: str | Path) -> pl.DataFrame:
    """Raw event frame of a whole Parquet file; row numbers count from 1."""
    with storage.open_read(os.fspath(path)) as handle:  # NOTE: `a[1]*.parquet` is a name
        return _concat_raw(list(_parquet_batches(handle)))


def _concat_raw(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if not frames:
        return pl.DataFrame(schema={**RAW_EVENT_SCHEMA, "raw": pl.String()})
    return pl.concat(
        [f.select(*RAW_EVENT_SCHEMA.names(), "raw").cast(RAW_EVENT_SCHEMA) for f in frames]
    )


# --- files, batch by batch -----------------------------------------------------------------


Batch = tuple[bool, pl.DataFrame]  # (JSON lines (row, text, raw)?, else a raw event frame)


def _batches(path: str, limits: ReadLimits) -> Iterator[Batch]:
    """The file's rows in batches of bounded size, row numbers continuing across them.
    Raises UnreadableFile (or whatever a reader library raises) when it cannot be read."""
    kind = file_format(path)
    name = storage.basename(path)
    with contextlib.ExitStack() as stack:
        if kind == "parquet":
            handle = stack.enter_context(storage.open_read(path))
            frames: Iterator[Batch] = ((False, f) for f in _parquet_batches(handle))
        elif kind in ("json", "csv"):
            chunks = stack.enter_context(_open_chunks(path, limits))
            if kind == "json":
                frames = ((True, f) for f in _json_line_batches(chunks, limits))
            else:
                frames = ((False, f) for f in _csv_batches(chunks, limits))
        else:
            raise UnreadableFile(f"unknown file type: {name}")
        for batch in frames:
            raise_point(f"ingest.read_batch:{name}")
            yield batch


def _unreadable(path: str, exc: BaseException) -> UnreadableFile:
    """Why a file could not be read, as the rejected row's detail."""
    if isinstance(exc, UnreadableFile):
        return exc
    kind = file_format(path)
    if isinstance(exc, MemoryError):
        return UnreadableFile(f"out of memory while reading it as {kind} (MemoryError: {exc})")
    return UnreadableFile(f"cannot be read as {kind}: {type(exc).__name__}: {exc}")


def read_event_file(path: str | Path, limits: ReadLimits | None = None) -> pl.DataFrame:
    """The raw event frame of one whole usage file (RAW_EVENT_SCHEMA columns + `raw`)."""
    path = os.fspath(path)
    try:
        frames = [
            raw_frame_of_lines(f) if lines else f
            for lines, f in _batches(path, limits or ReadLimits.from_settings())
        ]
        return _concat_raw(frames)
    except Exception as exc:
        # NOTE: whatever a reader library cannot make sense of quarantines this one file;
        # the run goes on with the others.
        raise _unreadable(path, exc) from exc


def raw_text_of_lines(path: str | Path, rows: Collection[int]) -> pl.DataFrame:
    """(row, raw) of the given rows of a file, read batch by batch (a few rows wanted)."""
    path, wanted = os.fspath(path), pl.Series(list(rows), dtype=pl.Int64)
    found: list[pl.DataFrame] = []
    try:
        for _lines, f in _batches(path, ReadLimits.from_settings()):
            found.append(f.select("row", "raw").filter(pl.col("row").is_in(wanted.implode())))
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    schema = pl.Schema({"row": pl.Int64(), "raw": pl.String()})
    return pl.concat([f.cast(schema) for f in found]) if found else pl.DataFrame(schema=schema)


def _validate(lines: bool, frame: pl.DataFrame, now: dt.datetime) -> ValidationResult:
    return validate_json_lines(frame, now) if lines else validate_raw_events(frame, now)


@dataclass
class StreamedValidation:
    """One file's validation, read in batches: its rejected rows, and its accepted events
    as parts (`parts()`), each at most about `spool_rows`; beyond that many rows the parts
    wait in temporary Parquet files (`close()` removes them)."""

    rejected: pl.DataFrame
    rows: int
    memory: list[pl.DataFrame] = dataclasses.field(default_factory=list)
    spooled: list[Path] = dataclasses.field(default_factory=list)
    folder: Path | None = None

    def parts(self) -> Iterator[pl.DataFrame]:
        for spool in self.spooled:
            yield pl.read_parquet(spool)
            spool.unlink()
        self.spooled = []
        if self.memory:
            yield pl.concat(self.memory)
        self.memory = []
        self.close()

    @property
    def accepted(self) -> pl.DataFrame:
        parts = list(self.parts())
        return pl.concat(parts) if parts else pl.DataFrame(schema=ACCEPTED_SCHEMA)

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def stream_event_file(
    path: str | Path, now: dt.datetime, limits: ReadLimits | None = None
) -> StreamedValidation:
    """Read and validate one usage file batch by batch: memory holds one batch, the
    rejected rows and at most `spool_rows` accepted rows (the rest is spooled to disk until
    the file has been read to its end, so a file that fails half-way adds no event).
    Raises UnreadableFile when the file cannot be read, whatever the cause."""
    path = os.fspath(path)
    limits = limits or ReadLimits.from_settings()
    result = StreamedValidation(rejected=pl.DataFrame(), rows=0)
    rejected: list[pl.DataFrame] = []
    held = 0
    try:
        for lines, frame in _batches(path, limits):
            checked = _validate(lines, frame, now)
            result.rows += checked.accepted.height + checked.rejected.height
            if checked.rejected.height:
                rejected.append(checked.rejected)
            if not checked.accepted.height:
                continue
            # NOTE: spooled only when the part would outgrow spool_rows, so a file of at
            # most spool_rows accepted rows never touches the disk.
            if held and held + checked.accepted.height > limits.spool_rows:
                if result.folder is None:
                    result.folder = Path(tempfile.mkdtemp(prefix="tallyflow-spool-"))
                spool = result.folder / f"{len(result.spooled):05d}.parquet"
                pl.concat(result.memory).write_parquet(spool, compression="lz4")
                result.spooled.append(spool)
                result.memory, held = [], 0
            result.memory.append(checked.accepted)
            held += checked.accepted.height
    except Exception as exc:
        result.close()
        raise _unreadable(path, exc) from exc
    result.rejected = (
        pl.concat(rejected, how="vertical_relaxed") if rejected else pl.DataFrame(schema=REJECTED)
    )
    return result


def validate_event_file(
    path: str | Path, now: dt.datetime, limits: ReadLimits | None = None
) -> ValidationResult:
    """Read one whole usage file and validate its rows (one ValidationResult in memory: a
    process boundary, such as a Dask worker's, carries it). Raises UnreadableFile."""
    streamed = stream_event_file(path, now, limits)
    return ValidationResult(accepted=streamed.accepted, rejected=streamed.rejected)


FileValidation = ValidationResult | StreamedValidation | UnreadableFile


def try_validate_event_file(path: str, now: dt.datetime) -> ValidationResult | UnreadableFile:
    """`validate_event_file`, with an unreadable file returned rather than raised (so the
    outcome of a file crosses a process boundary, e.g. a Dask worker, as a value)."""
    try:
        return validate_event_file(path, now)
    except UnreadableFile as exc:
        return exc


def try_stream_event_file(path: str, now: dt.datetime) -> StreamedValidation | UnreadableFile:
    """`stream_event_file`, with an unreadable file returned rather than raised."""
    try:
        return stream_event_file(path, now)
    except UnreadableFile as exc:
        return exc


def accepted_parts(result: ValidationResult | StreamedValidation) -> Iterator[pl.DataFrame]:
    """A file's accepted events, part by part (one part when validated elsewhere)."""
    if isinstance(result, StreamedValidation):
        yield from result.parts()
    else:
        yield result.accepted


def rows_of(result: ValidationResult | StreamedValidation) -> int:
    if isinstance(result, StreamedValidation):
        return result.rows
    return result.accepted.height + result.rejected.height
