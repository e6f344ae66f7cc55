"""Reading usage files into the raw event frame (models.events.RAW_EVENT_SCHEMA + `raw`).

Formats: JSON Lines (.jsonl/.ndjson), CSV with a header, each optionally gzipped, and
Parquet. Every input row keeps its row number and its raw bytes, so a rejected row can be
shown and replayed. A file that cannot be read at all raises UnreadableFile.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

import duckdb
import polars as pl

from models.events import (
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
from tallyflow.core import storage
from tallyflow.core.sqlfiles import duckdb_sql

JSON_SUFFIXES: Final = (".jsonl", ".ndjson")
CSV_SUFFIXES: Final = (".csv",)
PARQUET_SUFFIXES: Final = (".parquet",)
BOM: Final = b"\xef\xbb\xbf"


class UnreadableFile(Exception):
    """The file cannot be read at all (corrupt gzip, not Parquet, ...)."""


@dataclass(frozen=True)
class LandingFile:
    path: str  # its URL: an absolute local path or s3://bucket/key (tallyflow.core.storage)
    sha256: str
    size_bytes: int

    @property
    def name(self) -> str:
        return storage.basename(self.path)


def file_format(path: str | Path) -> str | None:
    """'json', 'csv' or 'parquet' from the name (a trailing .gz is allowed), else None."""
    full = storage.basename(os.fspath(path)).lower()
    name = full[:-3] if full.endswith(".gz") else full
    if name.endswith(JSON_SUFFIXES):
        return "json"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES) and not full.endswith(".gz"):
        return "parquet"
    return None


def sha256_of(url: str) -> str:
    digest = hashlib.sha256()
    with storage.open_read(url) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


Candidate = tuple[str, tuple[str, ...], int]  # url, parts under the root's parent, size


def _local_candidates(root: Path) -> list[Candidate]:
    candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    inside = root.resolve()
    return [
        (str(p.resolve()), p.relative_to(root.parent).parts, p.stat().st_size)
        for p in candidates
        # NOTE: a symlink could point anywhere (/etc, another tenant's drop): skipped, and so
        # is a path that leaves the root through a symlinked folder.
        if p == root or (not p.is_symlink() and _stays_under(p, inside))
    ]


def _stays_under(path: Path, root: Path) -> bool:
    """Does `path`, every link resolved, stay under `root` (symlinked folders included)?"""
    return path.resolve().is_relative_to(root)


def _remote_candidates(root: str) -> list[Candidate]:
    parent = root.rstrip("/").rsplit("/", 1)[0]
    return [
        (e.url, PurePosixPath(storage.relative(e.url, parent)).parts, e.size)
        for e in storage.list_files(root)
    ]


def discover_files(roots: Sequence[str | Path]) -> tuple[list[LandingFile], list[str]]:
    """Usage files under the roots (local folders or object-store prefixes, recursively,
    sorted), and the files ignored by name."""
    found: dict[str, int] = {}
    ignored: list[str] = []
    for root in (os.fspath(r) for r in roots):
        local = storage.is_local(root)
        candidates = _local_candidates(Path(root)) if local else _remote_candidates(root)
        for url, parts, size in candidates:
            if any(part.startswith(".") for part in parts):
                continue  # hidden files and folders (editors' and uploaders' temp files)
            if file_format(url) is None:
                ignored.append(url)
            else:
                found[url] = size
    urls = sorted(found)
    # NOTE: hashlib frees the GIL; an object store answers each read in its own round
    # trip, so more threads overlap those waits.
    remote = not all(storage.is_local(u) for u in urls)
    with ThreadPoolExecutor(max_workers=16 if remote else os.cpu_count() or 1) as pool:
        hashes = list(pool.map(sha256_of, urls))
    files = [LandingFile(u, h, found[u]) for u, h in zip(urls, hashes, strict=True)]
    return files, ignored


def _read_bytes(path: str) -> bytes:
    data = storage.read_bytes(path)
    if path.lower().endswith(".gz"):
        if not data.startswith(b"\x1f\x8b"):
            raise UnreadableFile("not a gzip file (no gzip header)")
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFile(f"not a readable gzip file: {exc}") from exc
    return data


def _split_lines(data: bytes) -> pl.DataFrame:
    """(row, text, raw) per non-blank line; text is null where the line is not UTF-8 (its
    `raw` then shows the bytes with backslash escapes)."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
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
    frame = frame.with_row_index("row", offset=1).cast({"row": pl.Int64})
    # NOTE: blank lines are not rows (they carry no event), so they are not counted.
    if frame.select(pl.col("text").str.starts_with("{").all()).item():
        return frame
    blank = pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() == "")
    return frame.filter(~blank)


def read_json_lines(data: bytes) -> pl.DataFrame:
    """Raw event frame of a JSON Lines payload (one JSON parse per line, in DuckDB)."""
    json_lines = _split_lines(data)
    if json_lines.height == 0:
        return pl.DataFrame(schema={**RAW_EVENT_SCHEMA, "raw": pl.String()})
    con = event_parser()
    try:
        frame: pl.DataFrame = con.sql(duckdb_sql("events/extract_json_event_fields")).pl()
    finally:
        con.close()
    frame = frame.cast({"row": pl.Int64})
    if not frame.get_column("row").is_sorted():  # NOTE: a parallel scan may reorder rows
        frame = frame.sort("row")
    return frame.hstack([json_lines.get_column("raw")])  # both in row order


def read_csv_rows(data: bytes) -> pl.DataFrame:
    """Raw event frame of a CSV payload with a header row (all cells as text)."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        table = pl.read_csv(
            io.BytesIO(data),
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
        (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("row"),  # header is row 1
        pl.lit(True).alias("is_object"),
        *exprs,
        raw.alias("raw"),
    )
    return _check_properties_are_objects(frame)


def _check_properties_are_objects(frame: pl.DataFrame) -> pl.DataFrame:
    """Tag a text `properties` cell as 'object' only when it is a JSON object."""
    if frame.filter(pl.col("properties").is_not_null()).height == 0:
        return frame
    props = frame.select("row", "properties")  # noqa: F841 - read by DuckDB by name
    con = duckdb.connect()
    try:
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


def read_parquet_rows(path: str | Path) -> pl.DataFrame:
    """Raw event frame of a Parquet file; row numbers count from 1."""
    url = os.fspath(path)
    try:
        source = url if storage.is_local(url) else io.BytesIO(storage.read_bytes(url))
        table = pl.read_parquet(source, glob=False)  # NOTE: `a[1]*.parquet` is a literal name
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise UnreadableFile(f"not a readable Parquet file: {exc}") from exc
    try:
        raw = pl.struct(pl.all()).struct.json_encode()
        return table.select(
            (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("row"),
            pl.lit(True).alias("is_object"),
            *[e for field in FIELDS for e in _parquet_field(table, field)],
            raw.alias("raw"),
        )
    except pl.exceptions.PolarsError as exc:
        raise UnreadableFile(f"Parquet columns cannot be read as events: {exc}") from exc


def validate_event_file(path: str | Path, now: dt.datetime) -> ValidationResult:
    """Read one usage file and validate its rows (JSON lines are taken apart and parsed in
    one DuckDB statement). Raises UnreadableFile when the file cannot be read at all."""
    path = os.fspath(path)
    if file_format(path) != "json":
        return validate_raw_events(read_event_file(path), now)
    try:
        return validate_json_lines(_split_lines(_read_bytes(path)), now)
    except (pl.exceptions.PolarsError, duckdb.Error, OSError, ValueError) as exc:
        raise UnreadableFile(f"cannot be read as json: {type(exc).__name__}: {exc}") from exc


def read_event_file(path: str | Path) -> pl.DataFrame:
    """The raw event frame of one usage file (RAW_EVENT_SCHEMA columns + `raw` bytes)."""
    path = os.fspath(path)
    kind = file_format(path)
    try:
        if kind == "parquet":
            frame = read_parquet_rows(path)
        elif kind == "json":
            frame = read_json_lines(_read_bytes(path))
        elif kind == "csv":
            frame = read_csv_rows(_read_bytes(path))
        else:
            raise UnreadableFile(f"unknown file type: {storage.basename(path)}")
        return frame.select(*RAW_EVENT_SCHEMA.names(), "raw").cast(RAW_EVENT_SCHEMA)
    except (pl.exceptions.PolarsError, duckdb.Error, OSError, ValueError) as exc:
        # NOTE: whatever a reader library cannot make sense of quarantines this one file;
        # the run goes on with the others.
        raise UnreadableFile(f"cannot be read as {kind}: {type(exc).__name__}: {exc}") from exc


FileValidation = ValidationResult | UnreadableFile


def try_validate_event_file(path: str, now: dt.datetime) -> FileValidation:
    """`validate_event_file`, with an unreadable file returned rather than raised (so the
    outcome of a file crosses a process boundary, e.g. a Dask worker, as a value)."""
    try:
        return validate_event_file(path, now)
    except UnreadableFile as exc:
        return exc
