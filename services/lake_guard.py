"""Lake safety: a lake belongs to one database; sweeps move, never unlink; commits are fenced.

1. Ownership. The lake root holds `.tallyflow-lake-owner.json`: the Postgres system
   identifier (`pg_control_system()`, unique per cluster, new after initdb or a restore
   into a fresh cluster) and the database name. A run connected to another database (a
   worker started without TALLYFLOW_DATABASE_URL gets a fresh embedded one; a database
   restored elsewhere) refuses before it touches the lake (`LakeOwnedElsewhere`, exit 1).
   The marker is written on first use, created exclusively (two first runs cannot both
   win); a lake that has event files but no marker is adopted only if this database's
   manifest lists some of them.
2. Sweeping. A file not in the manifest is moved to `<lake>/trash/<run_id>/<its path>`
   only when its name's run id is a run of this database that failed (interrupted runs
   are marked failed under the usage lock first). Files of unknown runs stay where they
   are. Trash folders older than the retention are purged.
3. Fencing. The commit of a run checks, inside its transaction, that the usage advisory
   lock is still held by the run's lock session (pg_locks), locks the run's job_runs row
   and requires it still 'running' (a run that took the lock after ours lost it marks
   ours failed first, or waits for our commit), and that it drained exactly the inbox
   rows it read. Otherwise `RunFenced`: the transaction rolls back, the run fails.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from tallyflow.core import storage
from tallyflow.core.clock import utc_now
from tallyflow.core.errors import TallyflowError
from tallyflow.core.sqlfiles import sql

log = logging.getLogger("tallyflow.lake")

MARKER = ".tallyflow-lake-owner.json"
SWEPT_AT = ".swept_at"
TRASH = "trash"
EVENTS = "events"


class LakeOwnedElsewhere(TallyflowError):
    code = "lake_owned_elsewhere"
    status = 409


class RunFenced(TallyflowError):
    code = "run_fenced"
    status = 409


@dataclass(frozen=True, slots=True)
class LakeOwner:
    system_identifier: str
    database: str

    def describe(self) -> str:
        return f"database {self.database!r} of Postgres system {self.system_identifier}"


def database_identity(conn: sa.Connection) -> LakeOwner:
    row = conn.execute(sql("lake/select_database_identity")).one()
    return LakeOwner(str(row.system_identifier), str(row.database))


def _root(lake: str | Path) -> str:
    """The lake's URL (a local path or s3://...): every function here takes either."""
    return os.fspath(lake)


def read_owner(lake: str | Path) -> LakeOwner | None:
    marker = storage.join(_root(lake), MARKER)
    try:
        data = json.loads(storage.read_bytes(marker).decode("utf-8"))
        return LakeOwner(str(data["system_identifier"]), str(data["database"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise LakeOwnedElsewhere(
            f"the lake {lake} has an unreadable owner marker {MARKER} ({exc}); nothing was "
            "changed: restore the marker or check which database wrote this lake"
        ) from None


def ensure_lake_owner(conn: sa.Connection, lake: str | Path) -> LakeOwner:
    """This database's identity, after checking (or recording, on first use) that it owns
    the lake. LakeOwnedElsewhere, with nothing in the lake changed, otherwise."""
    me = database_identity(conn)
    owner = read_owner(lake)
    if owner is None:
        _adopt(conn, lake, me)
        owner = read_owner(lake)
    if owner != me:
        assert owner is not None
        raise LakeOwnedElsewhere(
            f"the lake {lake} belongs to {owner.describe()}; this run is connected to "
            f"{me.describe()}. Nothing was changed. Point TALLYFLOW_DATABASE_URL at the "
            "lake's database, or TALLYFLOW_LAKE at this database's lake."
        )
    return me


def _adopt(conn: sa.Connection, lake: str | Path, me: LakeOwner) -> None:
    root = _root(lake)
    events = [u for u in _event_files(root) if not storage.basename(u).startswith(".")]
    if events:
        listed = {r.path for r in conn.execute(sql("ingest/select_lake_files"), {"days": None})}
        if not any(storage.relative(u, root) in listed for u in events):
            raise LakeOwnedElsewhere(
                f"the lake {lake} has {len(events)} event files but no owner marker, and "
                f"{me.describe()} lists none of them: it was written by another database. "
                "Nothing was changed."
            )
    body = json.dumps(
        {
            "system_identifier": me.system_identifier,
            "database": me.database,
            "claimed_at": utc_now().isoformat(),
        }
    )
    marker = storage.join(root, MARKER)
    if not storage.is_local(marker):
        # NOTE: an object store has no exclusive create. Runs of one database are serialised
        # by its usage lock, so only two different databases claiming one empty lake at the
        # same instant could race; the loser then reads the winner's marker and refuses.
        storage.write_bytes(marker, body.encode("utf-8"))
        return
    Path(root).mkdir(parents=True, exist_ok=True)
    try:
        # NOTE: exclusive create: of two first runs, one writes; the other reads its marker.
        with Path(marker).open("x", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
    except FileExistsError:
        pass


def _event_files(lake: str | Path) -> list[str]:
    """URLs of the files under the lake's events/ folder (local symlinks are not files of ours)."""
    entries = storage.list_files(storage.join(_root(lake), EVENTS))
    return [e.url for e in entries if not (storage.is_local(e.url) and Path(e.url).is_symlink())]


def run_id_of(path: str | Path) -> uuid.UUID | None:
    """The run id in a lake file name (`<run>-<slice>.parquet`, `.<run>-<slice>.parquet.tmp`)."""
    name = storage.basename(os.fspath(path)).lstrip(".")
    try:
        return uuid.UUID(name[:36])
    except ValueError:
        return None


@dataclass
class SweepResult:
    moved: list[str] = field(default_factory=list)  # to the trash (their new URLs)
    kept: list[str] = field(default_factory=list)  # unlisted, but not of a failed run here
    purged: list[str] = field(default_factory=list)  # trash folders past the retention


def _to_trash(root: str, run: uuid.UUID, urls: list[str], moment: float) -> list[str]:
    folder = storage.join(root, TRASH, str(run))
    moved = []
    for url in urls:
        target = storage.join(folder, storage.relative(url, root))
        storage.move(url, target)
        moved.append(target)
    # NOTE: the time of the sweep, read by purge_trash (an object store has no folder
    # mtime; the same file serves local disk).
    storage.write_bytes(storage.join(folder, SWEPT_AT), f"{moment:.0f}".encode())
    return moved


def sweep_retired_files(
    conn: sa.Connection, lake: str | Path, *, now: float | None = None
) -> list[str]:
    """Move the lake files that committed compactions retired (lake_files_retired) to
    `<lake>/trash/<run_id>/`, then forget them (each run's files in its own commit). A file
    already gone (moved before a crash) is only forgotten. Needs the usage lock."""
    root = _root(lake)
    by_run: dict[uuid.UUID, list[str]] = {}
    for r in conn.execute(sql("ingest/select_retired_lake_files")):
        by_run.setdefault(r.run_id, []).append(r.path)
    conn.commit()
    moved: list[str] = []
    moment = time.time() if now is None else now
    for run, paths in by_run.items():
        urls = [storage.join(root, p) for p in paths]
        moved += _to_trash(root, run, [u for u in urls if storage.exists(u)], moment)
        conn.execute(sql("ingest/delete_retired_lake_files"), {"paths": paths})
        conn.commit()
    return moved


def sweep_failed_run_files(
    conn: sa.Connection, lake: str | Path, *, retention_days: int, now: float | None = None
) -> SweepResult:
    """Move the lake files that compactions retired, and the unlisted lake files of this
    database's failed runs, to the trash; purge trash folders older than `retention_days`.
    Needs the usage lock."""
    root = _root(lake)
    result = SweepResult()
    result.moved += sweep_retired_files(conn, root, now=now)
    listed = {r.path for r in conn.execute(sql("ingest/select_lake_files"), {"days": None})}
    unlisted = [u for u in _event_files(root) if storage.relative(u, root) not in listed]
    by_run: dict[uuid.UUID, list[str]] = {}
    for url in unlisted:
        run = run_id_of(url)
        if run is None:
            result.kept.append(url)
        else:
            by_run.setdefault(run, []).append(url)
    failed: set[uuid.UUID] = set()
    if by_run:
        rows = conn.execute(sql("lake/select_failed_runs"), {"ids": list(by_run)})
        failed = {r.id for r in rows}
    moment = time.time() if now is None else now
    for run, urls in by_run.items():
        if run not in failed:
            result.kept += urls
            continue
        result.moved += _to_trash(root, run, urls, moment)
    if result.kept:
        log.warning(
            "left %d unlisted lake files alone: not written by a failed run of this database",
            len(result.kept),
        )
    result.purged = purge_trash(root, retention_days=retention_days, now=now)
    return result


def purge_trash(lake: str | Path, *, retention_days: int, now: float | None = None) -> list[str]:
    """Delete trash folders swept more than `retention_days` ago."""
    trash = storage.join(_root(lake), TRASH)
    cutoff = (time.time() if now is None else now) - retention_days * 86_400
    by_folder: dict[str, list[str]] = {}
    for entry in storage.list_files(trash):
        run_folder = storage.relative(entry.url, trash).split("/", 1)[0]
        by_folder.setdefault(storage.join(trash, run_folder), []).append(entry.url)
    purged = []
    for folder, urls in sorted(by_folder.items()):
        stamp = storage.join(folder, SWEPT_AT)
        try:
            swept_at = float(storage.read_bytes(stamp).decode())
        except (FileNotFoundError, ValueError):
            continue  # not a folder of ours, or half-written: left alone
        if swept_at < cutoff:
            for url in urls:
                storage.remove(url)
            if storage.is_local(folder):
                shutil.rmtree(folder, ignore_errors=True)
            purged.append(folder)
    return purged


def fence_run(conn: sa.Connection, *, lock_key: int, lock_pid: int, run_id: uuid.UUID) -> None:
    """Inside the commit's transaction: RunFenced unless the run's lock session still holds
    the usage lock and the run is still 'running' (its row is locked until commit)."""
    held = conn.execute(
        sql("lake/count_held_usage_lock"), {"key": lock_key, "pid": lock_pid}
    ).scalar_one()
    if not held:
        raise RunFenced(
            f"run {run_id} lost the usage lock (its lock session {lock_pid} ended): "
            "another run may be writing; this run's commit is refused and rolled back"
        )
    status = conn.execute(sql("lake/lock_job_run"), {"id": run_id}).scalar_one_or_none()
    if status != "running":
        raise RunFenced(
            f"run {run_id} is {status or 'missing'} in job_runs (marked by a later run): "
            "its commit is refused and rolled back"
        )


def check_drained(run_id: uuid.UUID, *, read: int, drained: int) -> None:
    """RunFenced unless the run marked exactly the inbox rows it read."""
    if read != drained:
        raise RunFenced(
            f"run {run_id} read {read} pushed events but could drain only {drained} (another "
            "run drained the others): its commit is refused and rolled back"
        )
