"""The hostile input corpus (tests/data/hostile, written by tests/data/make_hostile_corpus.py):
every bad row gets the expected reason, every good row beside it is kept, counts add up,
and the run never crashes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from flows.ingest_usage import ingest_usage
from tallyflow.core.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"
EXPECTED: dict[str, Any] = json.loads((DATA / "hostile_expectations.json").read_text())

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _ledger(engine: Engine) -> dict[str, sa.Row[Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM ingest_files")).all()
    return {r.path: r for r in rows}


def _reasons_by_line(engine: Engine) -> dict[tuple[str, int | None], str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, line_no, reason FROM rejected_rows")).all()
    return {(r.source, r.line_no): r.reason for r in rows}


def _same_content_skipped(landing: Path) -> set[str]:
    """Files whose bytes equal an earlier file's (path order): a file's content is
    ingested once, so these are skipped (the zero-byte files of several formats)."""
    seen: set[str] = set()
    skipped = set()
    for name in sorted(EXPECTED["files"]):
        digest = hashlib.sha256((landing / name).read_bytes()).hexdigest()
        if digest in seen:
            skipped.add(name)
        seen.add(digest)
    return skipped


def test_hostile_corpus(settings: Settings, engine: Engine) -> None:
    landing = settings.landing_path / "hostile"
    shutil.copytree(DATA / "hostile", landing)
    result = ingest_usage()
    skipped = _same_content_skipped(landing)
    assert result["skipped_files"] == len(skipped)
    assert all(EXPECTED["files"][n]["rows"] == 0 for n in skipped)  # empty files only
    totals = EXPECTED["totals"]
    unreadable = sum(
        1 for n, spec in EXPECTED["files"].items() if spec["unreadable_file"] and n not in skipped
    )
    # NOTE: tallyflow counts an unreadable file as one rejected row (nothing vanishes);
    # the corpus counts rows inside readable files only.
    assert result["rows"] == totals["rows"] + unreadable
    assert result["accepted"] == totals["accepted"]
    assert result["duplicates"] == totals["duplicates"]
    assert result["rejected"] == totals["rejected"] + unreadable
    assert result["rejected_by_reason"] == dict(
        sorted({**totals["rejected_by_reason"], "unreadable_file": unreadable}.items())
    )
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT sum(quantity_sum) FROM usage_daily")).scalar_one()
    assert total == Decimal(totals["accepted_quantity_sum"])

    ledger = _ledger(engine)
    reasons = _reasons_by_line(engine)
    for name, spec in EXPECTED["files"].items():
        path = str(landing / name)
        if name in skipped:
            assert path not in ledger, name
            continue
        entry = ledger[path]
        if spec["unreadable_file"]:
            assert entry.status == "quarantined", name
            assert reasons[(path, None)] == "unreadable_file", name
            continue
        assert (
            entry.rows_read,
            entry.rows_accepted,
            entry.rows_duplicate,
            entry.rows_rejected,
        ) == (spec["rows"], spec["accepted"], spec["duplicates"], spec["rejected"]), name
        for case in spec["cases"]:
            got = reasons.get((path, case["row"]), "ok")
            want = case["expect"] if case["expect"] != "duplicate" else "ok"
            assert got == want, f"{name} row {case['row']} ({case['case']})"
    # README.txt is ignored (not a usage file type), so it is not in the ledger
    assert len(ledger) == len(EXPECTED["files"]) - len(skipped)


def test_ten_megabyte_lines(settings: Settings, engine: Engine, tmp_path: Path) -> None:
    spec_module = importlib.util.spec_from_file_location(
        "make_hostile_corpus", DATA / "make_hostile_corpus.py"
    )
    assert spec_module and spec_module.loader
    module = importlib.util.module_from_spec(spec_module)
    sys.modules["make_hostile_corpus"] = module  # dataclasses look their module up
    spec_module.loader.exec_module(module)
    spec = module.write_big_line_file(tmp_path)
    result = ingest_usage(paths=[str(tmp_path / "big-lines.jsonl")])
    assert (result["rows"], result["accepted"], result["rejected"]) == (
        spec["rows"],
        spec["accepted"],
        spec["rejected"],
    )
    assert Counter(result["rejected_by_reason"]) == Counter(spec["rejected_by_reason"])
