"""Storage locations: a local folder, or a prefix in an S3-compatible object store.

A location is parsed once from a setting (`TALLYFLOW_LANDING`, `TALLYFLOW_LAKE`) or a
command-line path: a local path (made absolute) or `s3://bucket/prefix`. Any other URL
scheme is a configuration error (the CLI exits 2), never a local folder named `s3:`.

Files are named by their URL strings: an absolute local path, or `s3://bucket/key`. The
functions below take such strings. Local files keep the plain `os`/`pathlib` calls (no
fsspec layer on the hot path, so local runs are exactly as fast as before); object stores
go through s3fs, configured from the standard variables `AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (read when a filesystem is
first needed in a process, so Dask workers and Prefect workers need the same variables).

NOTE: object stores have no atomic rename. Writers write under the final name; for the
lake, the manifest row committed in the run's transaction alone makes a file visible.
`move` on an object store is copy + delete (not atomic either); the callers that move
(quarantine, sweep to trash) only move files that no committed state points at.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from tallyflow.core.errors import TallyflowError

if TYPE_CHECKING:
    import duckdb
    from fsspec import AbstractFileSystem

OBJECT_STORE_SCHEMES: Final = ("s3",)
_URL: Final = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):(?P<rest>.*)$")


class StorageConfigError(TallyflowError):
    """A location setting that names no supported storage (unknown scheme, no bucket)."""

    code = "invalid_storage_location"
    status = 400


@dataclass(frozen=True)
class FileEntry:
    url: str
    size: int
    mtime_ns: int | None = None  # local st_mtime_ns; an object's LastModified; None if unknown


@dataclass(frozen=True)
class Location:
    """A root folder: `url` is an absolute local path or `s3://bucket/prefix`."""

    url: str

    @classmethod
    def parse(cls, text: str, *, base: Path | None = None) -> Location:
        """Parse a setting or argument; relative local paths are taken from `base` (or the
        working directory). Raises StorageConfigError on an unknown scheme."""
        return cls(parse_url(text, base=base))

    @property
    def is_local(self) -> bool:
        return is_local(self.url)

    @property
    def path(self) -> Path:
        """The local folder (only for local locations)."""
        if not self.is_local:
            raise StorageConfigError(f"{self.url} is not a local folder")
        return Path(self.url)

    def join(self, *parts: str) -> str:
        """The URL of a file or folder under this location."""
        return join(self.url, *parts)

    def child(self, *parts: str) -> Location:
        return Location(self.join(*parts))

    def fs(self) -> AbstractFileSystem:
        return filesystem(self.url)

    def __str__(self) -> str:
        return self.url


def parse_url(text: str, *, base: Path | None = None) -> str:
    """The canonical URL of a location or file: an absolute local path, or `s3://bucket/key`
    without a trailing slash. `file://` URLs are local paths."""
    text = text.strip()
    match = _URL.match(text)
    if match is None:  # a plain path (a one-letter "scheme" is a Windows drive, not a URL)
        path = Path(text).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        return str(path.resolve())
    scheme, rest = match["scheme"].lower(), match["rest"]
    if scheme == "file" and rest.startswith("//"):
        return parse_url(rest[2:] or "/", base=base)
    if scheme not in OBJECT_STORE_SCHEMES:
        raise StorageConfigError(
            f"unsupported storage location {text!r}: use a local path or "
            + " or ".join(f"{s}://bucket/prefix" for s in OBJECT_STORE_SCHEMES),
        )
    if not rest.startswith("//") or not rest[2:].split("/", 1)[0]:
        raise StorageConfigError(f"{text!r} names no bucket: use {scheme}://bucket/prefix")
    key = posixpath.normpath(rest[2:]).strip("/")
    return f"{scheme}://{key}"


def is_local(url: str) -> bool:
    return "://" not in url


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


def join(url: str, *parts: str) -> str:
    if is_local(url):
        return os.path.join(url, *parts)
    return posixpath.join(url, *(p.strip("/") for p in parts))


def basename(url: str) -> str:
    return posixpath.basename(url.rstrip("/")) if not is_local(url) else os.path.basename(url)


def relative(url: str, root: str) -> str:
    """`url` relative to `root` (with `/` separators)."""
    if is_local(url):
        return Path(url).relative_to(root).as_posix()
    prefix = root.rstrip("/") + "/"
    if not url.startswith(prefix):
        raise ValueError(f"{url} is not under {root}")
    return url[len(prefix) :]


def s3_options() -> dict[str, object]:
    """s3fs options from the standard AWS variables (unset ones are left to botocore)."""
    env = os.environ
    options: dict[str, object] = {"use_listings_cache": False}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    if env.get("AWS_ACCESS_KEY_ID"):
        options["key"] = env["AWS_ACCESS_KEY_ID"]
        options["secret"] = env.get("AWS_SECRET_ACCESS_KEY")
        if env.get("AWS_SESSION_TOKEN"):
            options["token"] = env["AWS_SESSION_TOKEN"]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


def filesystem(url: str) -> AbstractFileSystem:
    """The fsspec filesystem of a URL (fsspec caches instances per process and options)."""
    import fsspec

    scheme = scheme_of(url)
    if scheme == "file":
        return fsspec.filesystem("file")
    if scheme not in OBJECT_STORE_SCHEMES:
        raise StorageConfigError(f"unsupported storage scheme {scheme!r} in {url}")
    return fsspec.filesystem(scheme, **s3_options())


def _key(url: str) -> str:
    """The filesystem path fsspec wants: `bucket/key` for an object store."""
    return url.split("://", 1)[1] if not is_local(url) else url


def _url(scheme: str, key: str) -> str:
    return f"{scheme}://{key}"


# --- reading -----------------------------------------------------------------------------


def read_bytes(url: str) -> bytes:
    if is_local(url):
        return Path(url).read_bytes()
    data: bytes = filesystem(url).cat_file(_key(url))
    return data


def open_read(url: str) -> IO[bytes]:
    """A binary file object for reading (use it in a `with`)."""
    if is_local(url):
        return open(url, "rb")
    handle: IO[bytes] = filesystem(url).open(_key(url), "rb")
    return handle


def exists(url: str) -> bool:
    """Whether a file or folder exists. On an object store a prefix is a folder when its
    bucket exists (object stores have no folders: an empty prefix is an empty folder)."""
    if is_local(url):
        return os.path.exists(url)
    fs, key = filesystem(url), _key(url)
    return bool(fs.exists(key)) or bool(fs.exists(key.split("/", 1)[0]))


def is_file(url: str) -> bool:
    if is_local(url):
        return os.path.isfile(url)
    return bool(filesystem(url).isfile(_key(url)))


def list_files(root: str) -> list[FileEntry]:
    """Every file under `root` (recursively, sorted by URL), or `root` itself if a file."""
    if is_local(root):
        path = Path(root)
        if path.is_file():
            return [_local_entry(path)]
        if not path.exists():
            return []
        found = [p for p in path.rglob("*") if p.is_file()]
        return sorted((_local_entry(p) for p in found), key=lambda e: e.url)
    fs, key, scheme = filesystem(root), _key(root), scheme_of(root)
    infos = fs.find(key, detail=True)
    assert isinstance(infos, dict)
    entries = [
        FileEntry(_url(scheme, name), int(info.get("size") or 0), _object_mtime_ns(info))
        for name, info in infos.items()
        if info.get("type") != "directory" and not name.endswith("/")
    ]
    return sorted(entries, key=lambda e: e.url)


def _local_entry(path: Path) -> FileEntry:
    st = path.stat()
    return FileEntry(str(path), st.st_size, st.st_mtime_ns)


def _object_mtime_ns(info: dict[str, object]) -> int | None:
    """An object's LastModified (s3fs gives a datetime) in nanoseconds since the epoch."""
    modified = info.get("LastModified") or info.get("mtime")
    if isinstance(modified, dt.datetime):
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=dt.UTC)
        delta = modified - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if isinstance(modified, int | float):
        return int(modified * 1e9)
    return None


def file_stat(url: str) -> FileEntry:
    """Size and mtime of one file (local: os.stat; object store: one HEAD)."""
    if is_local(url):
        return _local_entry(Path(url))
    info = filesystem(url).info(_key(url))
    return FileEntry(url, int(info.get("size") or 0), _object_mtime_ns(info))


# --- writing -----------------------------------------------------------------------------


def write_bytes(url: str, data: bytes) -> None:
    """Write a whole file under its final name (local: parent folders are created)."""
    if is_local(url):
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        Path(url).write_bytes(data)
        return
    filesystem(url).pipe_file(_key(url), data)


def copy(src: str, dst: str) -> None:
    """Copy a file, across filesystems too (a local landing file into an S3 lake)."""
    if is_local(src) and is_local(dst):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return
    write_bytes(dst, read_bytes(src))


def move(src: str, dst: str) -> None:
    """Move a file. Local: a rename (atomic on one filesystem). Object store: copy, then
    delete the source (not atomic: see the module NOTE)."""
    if is_local(src) and is_local(dst):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        return
    if scheme_of(src) == scheme_of(dst):
        filesystem(src).mv(_key(src), _key(dst))
        return
    copy(src, dst)
    remove(src)


def remove(url: str) -> None:
    if is_local(url):
        os.unlink(url)
        return
    filesystem(url).rm_file(_key(url))


# --- DuckDB ------------------------------------------------------------------------------


def connect_duckdb(urls: Iterable[str] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that can read `urls`: object-store filesystems are
    registered through fsspec (DuckDB's httpfs extension cannot be downloaded here); local
    files need nothing and read as before."""
    import duckdb

    con = duckdb.connect()
    for scheme in sorted({scheme_of(u) for u in urls} - {"file"}):
        con.register_filesystem(filesystem(f"{scheme}://"))
    return con
