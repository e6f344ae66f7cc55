"""Crash safety with the landing and the lake on S3 (moto's server on loopback): a run
killed with SIGKILL leaves nothing visible (its objects are written under their final
names but listed nowhere); the rerun completes and removes them; the end state equals the
generator's oracle, exactly as on local disk (tests/reliability/test_crash_safety.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tallyflow.core import storage
from tallyflow.core.settings import Settings
from tallyflow.synthetic.generate import GenerateSummary, UsageSpec, generate_usage, read_oracle
from tests.reliability import harness
from tests.reliability.harness import Expected, assert_consistent, day_totals
from tests.storage.conftest import upload_tree

# NOTE: SIGKILLed children on the S3 server (about 6 min here): slow for developers.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("crash_children_report_to_the_harness")]

MONTH = "2026-10"
SHARES = {"duplicates": 0.02, "conflicts": 0.01, "late": 0.03, "bad": 0.05}


@pytest.fixture(scope="module")
def generated(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, GenerateSummary, GenerateSummary]:
    root = tmp_path_factory.mktemp("s3-crash").resolve()
    a = generate_usage(
        root / "a",
        UsageSpec(month=MONTH, tenants=5, events=1500, seed=31, **SHARES),
        format="jsonl",
        files_by="rows",
        rows_per_file=500,
        oracle_path=root / "oracle-a.parquet",
    )
    b = generate_usage(
        root / "b",
        UsageSpec(month=MONTH, tenants=5, events=1200, seed=32, **SHARES),
        format="csv",
        files_by="rows",
        rows_per_file=400,
        oracle_path=root / "oracle-b.parquet",
    )
    return str(root), a, b


def _expected(root: str, summaries: list[GenerateSummary], s3_files: list[str]) -> Expected:
    expected = Expected()
    for s in summaries:
        expected.add_oracle(read_oracle(Path(root) / f"oracle-{Path(s.out_dir).name}.parquet"))
        expected.add_generated(s)
    expected.files = set(s3_files)  # the same contents, read back from the bucket
    return expected


@pytest.mark.parametrize(
    "point",
    [
        "lake.file_written@3",  # some lake objects written, not in the manifest
        "ingest.lake_written",  # every lake object written
        "commit.manifest_written",  # inside the transaction: manifest rows not committed
        "commit.before_commit",
    ],
)
def test_ingest_killed_on_s3_then_rerun(
    s3_settings: Settings,
    engine: Engine,
    tmp_path: Path,
    generated: tuple[str, GenerateSummary, GenerateSummary],
    point: str,
) -> None:
    root, a, b = generated
    landing = s3_settings.landing_location
    files_a = upload_tree(a.out_dir, landing.join("a"))
    files_b = upload_tree(b.out_dir, landing.join("b"))
    work = tmp_path / "work"
    harness.run_ok("ingest", s3_settings, work, {"paths": [landing.join("a")]})
    expected_a = _expected(root, [a], files_a)
    assert_consistent(engine, s3_settings.lake_location.url, expected_a)
    with engine.connect() as conn:
        old = day_totals(conn)
    listed_before = storage.list_files(s3_settings.lake_location.join("events"))

    harness.run_killed_at("ingest", s3_settings, work, point, {"paths": [landing.join("b")]})
    with engine.connect() as conn:
        assert day_totals(conn) == old  # nothing of the killed run is visible
        assert conn.execute(sa.text("SELECT count(*) FROM lake_files")).scalar_one() == len(
            listed_before
        )
    on_s3 = storage.list_files(s3_settings.lake_location.join("events"))
    assert len(on_s3) > len(listed_before)  # the killed run's objects: orphans

    harness.run_ok("ingest", s3_settings, work, {"paths": [landing.join("b")]})
    expected = _expected(root, [a, b], files_a + files_b)
    assert_consistent(engine, s3_settings.lake_location.url, expected)  # orphans removed too


def test_backfill_killed_on_s3_changes_nothing_then_rerun(
    s3_settings: Settings,
    engine: Engine,
    tmp_path: Path,
    generated: tuple[str, GenerateSummary, GenerateSummary],
) -> None:
    root, a, _ = generated
    landing = s3_settings.landing_location
    files_a = upload_tree(a.out_dir, landing.join("a"))
    work = tmp_path / "work"
    harness.run_ok("ingest", s3_settings, work, {"paths": [landing.join("a")]})
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE usage_daily SET quantity_sum = quantity_sum + 1"
                " WHERE extract(day FROM usage_date) % 4 = 0"
            )
        )
        drifted = day_totals(conn)
    window = {"start": f"{MONTH}-01", "end": f"{MONTH}-31"}
    harness.run_killed_at("backfill", s3_settings, work, "backfill.day_replaced@12", window)
    with engine.connect() as conn:
        assert day_totals(conn) == drifted
    assert harness.run_ok("backfill", s3_settings, work, window)["days"] == 31
    expected = _expected(root, [a], files_a)
    assert_consistent(engine, s3_settings.lake_location.url, expected)
