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

import datetime as dt
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from tallyflow.core.errors import TallyflowError
from tallyflow.core.sqlfiles import sql

log = logging.getLogger("tallyflow.lake")

MARKER = ".tallyflow-lake-owner.json"
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


def read_owner(lake: Path) -> LakeOwner | None:
    try:
        data = json.loads((lake / MARKER).read_text(encoding="utf-8"))
        return LakeOwner(str(data["system_identifier"]), str(data["database"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise LakeOwnedElsewhere(
            f"the lake {lake} has an unreadable owner marker {MARKER} ({exc}); nothing was "
            "changed: restore the marker or check which database wrote this lake"
        ) from None


def ensure_lake_owner(conn: sa.Connection, lake: Path) -> LakeOwner:
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


def _adopt(conn: sa.Connection, lake: Path, me: LakeOwner) -> None:
    events = [p for p in _event_files(lake) if not p.name.startswith(".")]
    if events:
        listed = {r.path for r in conn.execute(sql("ingest/select_lake_files"), {"days": None})}
        if not any(str(p.relative_to(lake)) in listed for p in events):
            raise LakeOwnedElsewhere(
                f"the lake {lake} has {len(events)} event files but no owner marker, and "
                f"{me.describe()} lists none of them: it was written by another database. "
                "Nothing was changed."
            )
    lake.mkdir(parents=True, exist_ok=True)
    body = json.dumps(
        {
            "system_identifier": me.system_identifier,
            "database": me.database,
            "claimed_at": dt.datetime.now(dt.UTC).isoformat(),
        }
    )
    try:
        # NOTE: exclusive create: of two first runs, one writes; the other reads its marker.
        with (lake / MARKER).open("x", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
    except FileExistsError:
        pass


def _event_files(lake: Path) -> list[Path]:
    root = lake / EVENTS
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def run_id_of(path: Path) -> uuid.UUID | None:
    """The run id in a lake file name (`<run>-<slice>.parquet`, `.<run>-<slice>.parquet.tmp`)."""
    name = path.name.lstrip(".")
    try:
        return uuid.UUID(name[:36])
    except ValueError:
        return None


@dataclass
class SweepResult:
    moved: list[Path] = field(default_factory=list)  # to the trash (their new paths)
    kept: list[Path] = field(default_factory=list)  # unlisted, but not of a failed run here
    purged: list[Path] = field(default_factory=list)  # trash folders past the retention


def sweep_failed_run_files(
    conn: sa.Connection, lake: Path, *, retention_days: int, now: float | None = None
) -> SweepResult:
    """Move the unlisted lake files of this database's failed runs to the trash; purge
    trash folders older than `retention_days`. Needs the usage lock."""
    result = SweepResult()
    listed = {r.path for r in conn.execute(sql("ingest/select_lake_files"), {"days": None})}
    unlisted = [p for p in _event_files(lake) if str(p.relative_to(lake)) not in listed]
    by_run: dict[uuid.UUID, list[Path]] = {}
    for path in unlisted:
        run = run_id_of(path)
        if run is None:
            result.kept.append(path)
        else:
            by_run.setdefault(run, []).append(path)
    failed: set[uuid.UUID] = set()
    if by_run:
        rows = conn.execute(sql("lake/select_failed_runs"), {"ids": list(by_run)})
        failed = {r.id for r in rows}
    for run, paths in by_run.items():
        if run not in failed:
            result.kept += paths
            continue
        for path in paths:
            target = lake / TRASH / str(run) / path.relative_to(lake)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            result.moved.append(target)
    if result.kept:
        log.warning(
            "left %d unlisted lake files alone: not written by a failed run of this database",
            len(result.kept),
        )
    result.purged = purge_trash(lake, retention_days=retention_days, now=now)
    return result


def purge_trash(lake: Path, *, retention_days: int, now: float | None = None) -> list[Path]:
    """Delete trash folders last filled more than `retention_days` ago."""
    trash = lake / TRASH
    if not trash.exists():
        return []
    cutoff = (time.time() if now is None else now) - retention_days * 86_400
    purged = []
    for folder in trash.iterdir():
        if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder)
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
