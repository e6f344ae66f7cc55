"""The ingest flow end to end: real files, real Postgres, real Prefect flow runs."""

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
from tallyflow.core.settings import Settings
from tallyflow.synthetic.generate import UsageSpec, generate_usage
from tests.helpers import ev, oracle_usage, rejected, usage, usage_full, write_csv, write_jsonl

pytestmark = pytest.mark.usefixtures("prefect_harness")


def ingest(*paths: Path) -> dict[str, Any]:
    result: dict[str, Any] = ingest_usage(paths=[str(p) for p in paths] if paths else None)
    # NOTE: the contract's invariant, on every run.
    assert result["rows"] == result["accepted"] + result["duplicates"] + result["rejected"]
    return result


def test_every_reason_rejected_and_neighbours_kept(settings: Settings, engine: Engine) -> None:
    good = [ev(f"g{i}", quantity="1") for i in range(13)]
    bad = [
        ev("", quantity="1"),  # invalid_event_id
        ev("b1", tenant="-x"),  # invalid_tenant_id
        ev("b2", metric="Bad"),  # invalid_metric
        ev("b3", quantity="NaN"),  # invalid_quantity
        ev("b4", quantity=-1),  # negative_quantity
        ev("b5", quantity="1e13"),  # quantity_too_large
        ev("b6", occurred_at="2026-02-30T00:00:00Z"),  # invalid_timestamp
        ev("b7", occurred_at="2026-10-05T10:00:00"),  # naive_timestamp
        ev("b8", occurred_at="2099-01-01T00:00:00Z"),  # future_timestamp
        {"event_id": "b9", "tenant_id": "acme", "metric": "api.calls", "quantity": 1},  # missing
        "{not json",  # malformed_row
        ev("g0", quantity="2"),  # conflicting_duplicate (g0 accepted first with 1)
    ]
    lines: list[Any] = []
    for g, b in zip(good, bad, strict=False):
        lines += [g, b]
    lines.append(good[-1])
    path = write_jsonl(settings.landing_path / "mixed.jsonl", lines)
    result = ingest()
    assert result["accepted"] == 13
    assert result["rejected_by_reason"] == {
        r: 1
        for r in (
            "conflicting_duplicate",
            "future_timestamp",
            "invalid_event_id",
            "invalid_metric",
            "invalid_quantity",
            "invalid_tenant_id",
            "invalid_timestamp",
            "malformed_row",
            "missing_field",
            "naive_timestamp",
            "negative_quantity",
            "quantity_too_large",
        )
    }
    assert usage(engine) == {("acme", "api.calls", "2026-10-05"): (Decimal(13), 13, Decimal(1))}
    # every rejected row is kept with its file, line number and raw text
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT source, line_no, reason, raw FROM rejected_rows ORDER BY line_no")
        ).all()
    assert [r.line_no for r in rows] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]
    assert rows[10].reason == "malformed_row" and bytes(rows[10].raw) == b"{not json"
    assert {r.source for r in rows} == {str(path)}


def test_formats_csv_jsonl_gzip_parquet(settings: Settings, engine: Engine) -> None:
    landing = settings.landing_path
    write_jsonl(landing / "a.jsonl", [ev("j1", quantity=1)])
    write_jsonl(landing / "sub" / "b.ndjson.gz", [ev("j2", quantity=2)], gz=True)
    write_csv(landing / "c.csv", [ev("c1", quantity="3"), ev("c2", quantity="")])
    write_csv(landing / "d.csv.gz", [ev("c3", quantity="4")], gz=True)
    pl.DataFrame([ev("p1", quantity="5"), ev("p2", quantity="x")]).write_parquet(
        landing / "e.parquet"
    )
    result = ingest()
    assert (result["files"], result["accepted"], result["rejected"]) == (5, 5, 2)
    assert result["rejected_by_reason"] == {"missing_field": 1, "invalid_quantity": 1}
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(15), 5, Decimal(5))


def test_corrupt_gzip_quarantined_others_ingested(settings: Settings, engine: Engine) -> None:
    landing = settings.landing_path
    good = gzip.compress(b'{"event_id":"x"}\n')
    (landing / "broken.jsonl.gz").write_bytes(good[: len(good) // 2])
    (landing / "not.parquet").write_bytes(b"PAR1 this is not parquet")
    write_jsonl(landing / "ok.jsonl", [ev("e1", quantity="2.5")])
    result = ingest()
    assert result["accepted"] == 1
    assert result["rejected_by_reason"] == {"unreadable_file": 2}
    with engine.connect() as conn:
        ledger = dict(conn.execute(sa.text("SELECT path, status FROM ingest_files")).all())
    assert ledger == {
        str(landing / "broken.jsonl.gz"): "quarantined",
        str(landing / "not.parquet"): "quarantined",
        str(landing / "ok.jsonl"): "ingested",
    }
    assert len(list((settings.lake_path / "quarantine").iterdir())) == 2
    # the same broken content is not retried on the next run
    assert ingest()["files"] == 0


def test_duplicates_across_files_and_runs_counted_once(settings: Settings, engine: Engine) -> None:
    landing = settings.landing_path
    write_jsonl(landing / "1.jsonl", [ev("e1", quantity=1), ev("e2", quantity=2)])
    write_jsonl(landing / "2.jsonl", [ev("e2", quantity=2), ev("e3", quantity=3)])
    first = ingest()
    assert (first["accepted"], first["duplicates"]) == (3, 1)
    write_jsonl(landing / "3.jsonl", [ev("e1", quantity=1), ev("e3", quantity=3)])
    second = ingest()
    assert (second["accepted"], second["duplicates"], second["rejected"]) == (0, 2, 0)
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(6), 3, Decimal(3))


@pytest.mark.parametrize("slice_rows", [1, 2_000_000], ids=["slice-per-file", "one-slice"])
def test_repeats_across_files_of_one_run(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch, slice_rows: int
) -> None:
    """A file's repeats of earlier files in the same run are found whether those files'
    events are still in memory or already written to the lake (a slice per file)."""
    from tasks import ingest as ingest_tasks

    monkeypatch.setattr(ingest_tasks._LakeStager, "LAKE_SLICE_ROWS", slice_rows)
    landing = settings.landing_path
    write_jsonl(landing / "1.jsonl", [ev("e1", quantity=1), ev("e2", quantity=2)])
    write_jsonl(landing / "2.jsonl", [ev("e2", quantity=2), ev("e3", quantity=3)])
    write_jsonl(landing / "3.jsonl", [ev("e1", quantity=5), ev("e3", quantity=3), ev("e4")])
    result = ingest()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (4, 2, 1)
    assert rejected(engine) == [(str(landing / "3.jsonl"), 1, "conflicting_duplicate")]
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(7), 4, Decimal(3))
    lake_files = list(settings.lake_path.rglob("*.parquet"))
    assert len(lake_files) == (3 if slice_rows == 1 else 1)


def test_conflicting_duplicate_rejected_first_version_stands(
    settings: Settings, engine: Engine
) -> None:
    write_jsonl(settings.landing_path / "1.jsonl", [ev("e1", quantity=1)])
    ingest()
    # same key, other content: in a later file, and within one file
    write_jsonl(
        settings.landing_path / "2.jsonl",
        [ev("e1", quantity=9), ev("e2", quantity=2), ev("e2", quantity=2, metric="other")],
    )
    result = ingest()
    assert result["rejected_by_reason"] == {"conflicting_duplicate": 2}
    with engine.connect() as conn:
        kept = conn.execute(
            sa.text("SELECT line_no, raw FROM rejected_rows ORDER BY line_no")
        ).all()
    lines = (settings.landing_path / "2.jsonl").read_text().splitlines()
    assert [(r.line_no, bytes(r.raw).decode()) for r in kept] == [(1, lines[0]), (3, lines[2])]
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(3), 2, Decimal(2))
    assert ("acme", "other", "2026-10-05") not in usage(engine)


def test_offsets_crossing_utc_midnight_land_on_the_utc_day(
    settings: Settings, engine: Engine
) -> None:
    write_jsonl(
        settings.landing_path / "tz.jsonl",
        [
            ev("late-ny", occurred_at="2026-10-05T21:30:00-05:00"),  # 02:30 UTC on the 6th
            ev("early-in", occurred_at="2026-10-05T03:00:00+05:30"),  # 21:30 UTC on the 4th
            ev("epoch", occurred_at=1759708800),  # 2025-10-06T00:00:00Z
        ],
    )
    result = ingest()
    assert result["days"] == ["2025-10-06", "2026-10-04", "2026-10-06"]
    assert set(usage(engine)) == {
        ("acme", "api.calls", "2025-10-06"),
        ("acme", "api.calls", "2026-10-04"),
        ("acme", "api.calls", "2026-10-06"),
    }


def test_late_events_reaggregate_their_day(settings: Settings, engine: Engine) -> None:
    write_jsonl(settings.landing_path / "day.jsonl", [ev("e1", quantity=1), ev("e2", quantity=2)])
    ingest()
    write_jsonl(settings.landing_path / "late.jsonl", [ev("e3", quantity="0.5")])
    result = ingest()
    assert result["days"] == ["2026-10-05"]
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal("3.5"), 3, Decimal(2))


def test_rerun_on_same_landing_is_a_no_op(settings: Settings, engine: Engine) -> None:
    write_jsonl(settings.landing_path / "a.jsonl", [ev("e1"), ev("e2", tenant="beta")])
    ingest()
    before = usage_full(engine)
    lake_files = sorted(settings.lake_path.rglob("*.parquet"))
    result = ingest()
    assert result == {
        "files": 0,
        "skipped_files": 1,
        "rows": 0,
        "accepted": 0,
        "duplicates": 0,
        "rejected": 0,
        "rejected_by_reason": {},
        "days": [],
    }
    assert usage_full(engine) == before  # updated_at included
    assert sorted(settings.lake_path.rglob("*.parquet")) == lake_files


def test_generated_month_matches_oracle_and_backfill_reproduces_it(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    spec = UsageSpec(
        month="2026-10",
        tenants=30,
        events=6000,
        seed=7,
        duplicates=0.03,
        conflicts=0.02,
        late=0.03,
        bad=0.05,
        now=dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
    )
    oracle_path = tmp_path / "oracle.parquet"
    summary = generate_usage(
        settings.landing_path, spec, format="csv", gzip=True, oracle_path=oracle_path
    )
    result = ingest()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (
        summary.accepted,
        summary.duplicates,
        summary.rejected,
    )
    assert result["rejected_by_reason"] == dict(sorted(summary.rejected_by_reason.items()))
    expected = oracle_usage(oracle_path)
    assert {k: (v[0], v[1]) for k, v in usage(engine).items()} == expected

    before = usage_full(engine)
    with engine.begin() as conn:  # damage a few days, then recompute them from the lake
        conn.execute(sa.text("DELETE FROM usage_daily WHERE usage_date = '2026-10-03'"))
        conn.execute(
            sa.text("UPDATE usage_daily SET quantity_sum = 0 WHERE usage_date = '2026-10-04'")
        )
        conn.execute(
            sa.text(
                "INSERT INTO usage_daily VALUES ('ghost', 'api.calls', '2026-10-05', 1, 1, 1,"
                " now(), now(), now())"
            )
        )
    out = backfill_usage(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 31))
    assert out == {"days": 31, "rows_written": len(before)}
    after = usage_full(engine)
    key = slice(0, 8)  # every column but updated_at
    assert [r[key] for r in after] == [r[key] for r in before]


def test_backfill_of_days_without_events_leaves_no_rows(settings: Settings, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO usage_daily VALUES"
                " ('t', 'm', '2026-09-01', 5, 1, 5, now(), now(), now())"
            )
        )
    out = backfill_usage(start=dt.date(2026, 9, 1), end=dt.date(2026, 9, 2))
    assert out == {"days": 2, "rows_written": 0}
    assert usage(engine) == {}


def test_failed_run_changes_nothing_and_rerun_completes(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(settings.landing_path / "a.jsonl", [ev("e1", quantity=4), "{bad"])
    import tasks.ingest as ingest_tasks

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="disk on fire"):
        patch.setattr(ingest_tasks, "replace_usage_days", boom)
        ingest_usage()
    assert usage(engine) == {} and rejected(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ingest_files")).scalar_one() == 0
        status = conn.execute(sa.text("SELECT status, error FROM job_runs")).one()
    assert status.status == "failed" and "disk on fire" in status.error
    assert list(settings.lake_path.rglob("*.parquet"))  # orphans of the failed run

    result = ingest()
    assert (result["accepted"], result["rejected"]) == (1, 1)
    assert usage(engine)[("acme", "api.calls", "2026-10-05")] == (Decimal(4), 1, Decimal(4))
    assert len(list(settings.lake_path.rglob("*.parquet"))) == 1  # orphan removed
