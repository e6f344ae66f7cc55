"""The ingest and backfill flows with the landing and the lake on S3 (moto's server on
loopback, the real S3 wire protocol): the same results as on local disk."""

from __future__ import annotations

import datetime as dt
import gzip
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from flows.backfill_usage import backfill_usage
from flows.ingest_usage import ingest_usage
from tallyflow.core import storage
from tallyflow.core.db import get_engine
from tallyflow.core.settings import Settings
from tallyflow.synthetic.generate import UsageSpec, generate_usage
from tests.helpers import ev, oracle_usage, rows, usage, usage_full, write_csv, write_jsonl
from tests.storage.conftest import upload_tree

pytestmark = pytest.mark.usefixtures("prefect_harness")

SPEC = UsageSpec(
    month="2026-10",
    tenants=12,
    events=4000,
    seed=21,
    duplicates=0.03,
    conflicts=0.02,
    late=0.03,
    bad=0.05,
    now=dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
)
DAILY = slice(0, 8)  # every usage_daily column but updated_at


def ingest(*paths: str) -> dict[str, Any]:
    result: dict[str, Any] = ingest_usage(paths=list(paths) if paths else None)
    assert result["rows"] == result["accepted"] + result["duplicates"] + result["rejected"]
    return result


def outcome(engine: Engine) -> dict[str, Any]:
    """What a run leaves in Postgres, with file locations reduced to names under the root."""
    return {
        "usage": [r[DAILY] for r in usage_full(engine)],
        "rejected": rows(
            engine,
            "SELECT regexp_replace(source, '^.*/landing/', ''), line_no, reason, raw"
            " FROM rejected_rows ORDER BY 1, 2, 3",
        ),
        "ledger": rows(
            engine,
            "SELECT regexp_replace(path, '^.*/landing/', ''), sha256, status, rows_read,"
            " rows_accepted, rows_duplicate, rows_rejected FROM ingest_files ORDER BY 1",
        ),
        "manifest": rows(
            engine, "SELECT usage_date, row_count FROM lake_files ORDER BY usage_date, row_count"
        ),
    }


def test_month_on_s3_equals_local_disk_and_reruns_and_backfills(
    s3_settings: Settings,
    engine: Engine,
    other_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generated = tmp_path / "generated" / "landing"
    summary = generate_usage(
        generated,
        SPEC,
        format="jsonl",
        files_by="rows",
        rows_per_file=900,
        oracle_path=tmp_path / "oracle.parquet",
    )
    upload_tree(generated, s3_settings.landing_location.url)

    first = ingest()
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (
        summary.accepted,
        summary.duplicates,
        summary.rejected,
    )
    assert {k: v[:2] for k, v in usage(engine).items()} == oracle_usage(tmp_path / "oracle.parquet")
    on_s3 = storage.list_files(s3_settings.lake_location.join("events"))
    assert len(on_s3) == len(rows(engine, "SELECT path FROM lake_files")) > 0
    assert all(e.url.startswith(f"{s3_settings.lake_location.url}/events/") for e in on_s3)

    # a rerun on the same landing changes nothing, not even updated_at
    before = usage_full(engine)
    again = ingest()
    assert (again["files"], again["skipped_files"], again["rows"]) == (0, first["files"], 0)
    assert usage_full(engine) == before
    assert storage.list_files(s3_settings.lake_location.join("events")) == on_s3

    # a backfill restores damaged days from the S3 lake
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM usage_daily WHERE usage_date = '2026-10-03'"))
        conn.execute(
            sa.text("UPDATE usage_daily SET quantity_sum = 0 WHERE usage_date = '2026-10-04'")
        )
    assert backfill_usage(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 31)) == {
        "days": 31,
        "rows_written": len(before),
    }
    assert [r[DAILY] for r in usage_full(engine)] == [r[DAILY] for r in before]
    on_s3_outcome = outcome(engine)

    # the same input on local disk, into a second database: the same rows
    local_landing, local_lake = tmp_path / "local" / "landing", tmp_path / "local" / "lake"
    upload_tree(generated, str(local_landing))
    for key, value in {
        "TALLYFLOW_DATABASE_URL": other_database_url,
        "TALLYFLOW_LANDING": str(local_landing),
        "TALLYFLOW_LAKE": str(local_lake),
    }.items():
        monkeypatch.setenv(key, value)
    local = ingest()
    assert {k: local[k] for k in first if k != "days"} == {
        k: first[k] for k in first if k != "days"
    }
    local_engine = get_engine(Settings(database_url=other_database_url))
    assert outcome(local_engine) == on_s3_outcome


def test_formats_hidden_ignored_and_quarantine_on_s3(
    s3_settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    local = tmp_path / "drop"
    write_jsonl(local / "a.jsonl", [ev("j1", quantity=1)])
    write_jsonl(local / "sub" / "b.ndjson.gz", [ev("j2", quantity=2)], gz=True)
    write_csv(local / "c.csv", [ev("c1", quantity="3"), ev("c2", quantity="")])
    write_csv(local / "d.csv.gz", [ev("c3", quantity="4")], gz=True)
    pl.DataFrame([ev("p1", quantity="5"), ev("p2", quantity="x")]).write_parquet(
        local / "e.parquet"
    )
    good = gzip.compress(b'{"event_id":"x"}\n')
    (local / "broken.jsonl.gz").write_bytes(good[: len(good) // 2])
    write_jsonl(local / ".uploading" / "f.jsonl", [ev("hidden")])
    (local / "notes.txt").write_text("not usage")
    landing = s3_settings.landing_location
    upload_tree(local, landing.url)

    result = ingest()
    assert (result["files"], result["accepted"], result["rejected"]) == (6, 5, 3)
    assert result["rejected_by_reason"] == {
        "invalid_quantity": 1,
        "missing_field": 1,
        "unreadable_file": 1,
    }
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(15), 5, Decimal(5))
    ledger = dict(rows(engine, "SELECT path, status FROM ingest_files"))
    assert ledger[landing.join("broken.jsonl.gz")] == "quarantined"
    assert ledger[landing.join("sub/b.ndjson.gz")] == "ingested"
    quarantined = storage.list_files(s3_settings.lake_location.join("quarantine"))
    assert [storage.basename(e.url).split("-", 1)[1] for e in quarantined] == ["broken.jsonl.gz"]
    assert storage.read_bytes(quarantined[0].url) == (local / "broken.jsonl.gz").read_bytes()


def test_repeats_of_committed_events_are_read_from_their_s3_day_files(
    s3_settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """A later run's repeat of a committed event: its index entry names the day, whose S3
    lake file gives the standing version (duplicate, or conflict with another content)."""
    landing = s3_settings.landing_location
    first = tmp_path / "first"
    write_jsonl(first / "a.jsonl", [ev("r1", quantity=1), ev("r2", quantity=2)])
    upload_tree(first, landing.url)
    assert ingest()["accepted"] == 2
    second = tmp_path / "second"
    write_jsonl(
        second / "b.jsonl",
        [ev("r1", quantity=1), ev("r2", quantity=9), ev("r3", quantity=3)],
    )
    upload_tree(second, landing.url)
    result = ingest()
    assert (result["files"], result["accepted"], result["duplicates"]) == (1, 1, 1)
    assert result["rejected_by_reason"] == {"conflicting_duplicate": 1}
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(6), 3, Decimal(3))


def test_failed_run_leaves_nothing_visible_on_s3_and_rerun_completes(
    s3_settings: Settings, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = s3_settings.landing_location
    write_jsonl(tmp_path / "drop" / "a.jsonl", [ev("e1", quantity=4), "{bad"])
    upload_tree(tmp_path / "drop", landing.url)
    import services.ingest.commit as ingest_commit

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="disk on fire"):
        patch.setattr(ingest_commit, "replace_usage_days", boom)
        ingest_usage()
    assert usage(engine) == {}
    assert rows(engine, "SELECT count(*) FROM lake_files") == [(0,)]
    assert rows(engine, "SELECT count(*) FROM ingest_files") == [(0,)]
    orphans = storage.list_files(s3_settings.lake_location.join("events"))
    assert len(orphans) == 1  # written under its final name, listed nowhere

    result = ingest()
    assert (result["accepted"], result["rejected"]) == (1, 1)
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(4), 1, Decimal(4))
    now_on_s3 = storage.list_files(s3_settings.lake_location.join("events"))
    listed = {
        s3_settings.lake_location.join(p) for (p,) in rows(engine, "SELECT path FROM lake_files")
    }
    assert {e.url for e in now_on_s3} == listed and orphans[0].url not in listed
