"""Discovery: what an ingest run has to read. The usage files under the landing roots (a
path whose size and mtime match the ledger's is skipped unread, the others hashed and
checked against the ledger), and whether pushed events wait in the inbox.

NOTE: no Polars, DuckDB or Pandera here (nor in what it imports): a run with nothing new
decides so without loading the readers (tallyflow ingest's start-up, issue 12 item 4).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

import sqlalchemy as sa

from tallyflow.core import storage
from tallyflow.core.sqlfiles import sql

JSON_SUFFIXES: Final = (".jsonl", ".ndjson")
CSV_SUFFIXES: Final = (".csv",)
PARQUET_SUFFIXES: Final = (".parquet",)


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


@dataclass(frozen=True)
class StatFile(LandingFile):
    """A landing file with the mtime it had when listed (recorded with its ledger row)."""

    mtime_ns: int | None = None


Listed = tuple[
    str, tuple[str, ...], int, int | None
]  # url, parts under the root's parent, size, mtime


def _listed(roots: list[str]) -> list[Listed]:
    out: list[Listed] = []
    for root in roots:
        if storage.is_local(root):
            # NOTE: readers' listing keeps its symlink rules; a second stat gives the mtime
            for url, parts, size in _local_candidates(Path(root)):
                out.append((url, parts, size, os.stat(url).st_mtime_ns))
        else:
            parent = root.rstrip("/").rsplit("/", 1)[0]
            for e in storage.list_files(root):
                parts = PurePosixPath(storage.relative(e.url, parent)).parts
                out.append((e.url, parts, e.size, e.mtime_ns))
    return out


def list_landing(roots: list[str]) -> tuple[dict[str, tuple[int, int | None]], list[str]]:
    """Usage files under the roots with their (size, mtime), and the files ignored by name
    (hidden files and folders are neither)."""
    found: dict[str, tuple[int, int | None]] = {}
    ignored: list[str] = []
    for url, parts, size, mtime in _listed(roots):
        if any(part.startswith(".") for part in parts):
            continue  # hidden files and folders (editors' and uploaders' temp files)
        if file_format(url) is None:
            ignored.append(url)
        else:
            found[url] = (size, mtime)
    return dict(sorted(found.items())), ignored


def new_landing_files(
    conn: sa.Connection, roots: list[str]
) -> tuple[list[LandingFile], int, list[str]]:
    """New usage files under the roots. A path whose size and mtime match the recorded ones
    of a content in the ledger is skipped without reading it (one lookup by primary key for
    the run); the others are hashed, and a content already ingested is skipped too (its
    path's size and mtime are recorded, so the next run does not read it again)."""
    found, ignored = list_landing(roots)
    recorded = {
        r.path: (r.size_bytes, r.mtime_ns)
        for r in conn.execute(sql("ingest/select_landing_file_stats"), {"paths": list(found)})
    }
    to_hash = [u for u, stat in found.items() if stat[1] is None or recorded.get(u) != stat]
    # NOTE: hashlib frees the GIL; an object store answers each read in its own round
    # trip, so more threads overlap those waits.
    remote = not all(storage.is_local(u) for u in to_hash)
    with ThreadPoolExecutor(max_workers=16 if remote else os.cpu_count() or 1) as pool:
        hashes = list(pool.map(sha256_of, to_hash))
    unique: dict[str, StatFile] = {}
    for u, h in zip(to_hash, hashes, strict=True):
        size, mtime = found[u]
        unique.setdefault(h, StatFile(u, h, size, mtime))  # the same content twice: read once
    known = set(
        conn.execute(sql("ingest/select_ingested_file_hashes"), {"hashes": list(unique)}).scalars()
    )
    new: list[LandingFile] = [f for sha, f in unique.items() if sha not in known]
    seen = [
        StatFile(u, h, *found[u])
        for u, h in zip(to_hash, hashes, strict=True)
        if h in known and found[u][1] is not None
    ]
    if seen:
        # NOTE: outside the run's transaction: a cache of a fact already committed (the
        # ledger row of this content), so a crash here loses nothing.
        record_landing_stats(conn, seen)
        conn.commit()
    return new, len(found) - len(new), ignored


def record_landing_stats(conn: sa.Connection, files: list[StatFile]) -> None:
    """Remember the (size, mtime) of paths whose content is (being) put in the ledger."""
    rows = [f for f in files if f.mtime_ns is not None]
    if rows:
        conn.execute(
            sql("ingest/upsert_landing_file_stats"),
            {
                "paths": [f.path for f in rows],
                "sizes": [f.size_bytes for f in rows],
                "mtimes": [f.mtime_ns for f in rows],
                "hashes": [f.sha256 for f in rows],
            },
        )


def has_pushed_events(conn: sa.Connection) -> bool:
    """Do pushed events wait in the inbox (not yet drained into the lake)?"""
    first = conn.execute(
        sql("ingest/select_undrained_inbox_events"), {"after": 0, "limit": 1}
    ).first()
    return first is not None
