"""Landing discovery on hostile trees: symlinks skipped, nothing outside the landing root
read, Parquet names read literally (never as a glob)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from services.ingest.discovery import discover_files
from services.ingest.readers import read_parquet_rows


def _jsonl(path: Path, event_id: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "event_id": event_id,
        "tenant_id": "acme",
        "metric": "api_calls",
        "quantity": "1",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    path.write_text(json.dumps(line) + "\n")
    return path


def test_symlinks_and_paths_outside_the_root_are_skipped(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    outside = tmp_path / "elsewhere"
    good = _jsonl(landing / "day" / "good.jsonl", "g")
    secret = _jsonl(outside / "other-tenant.jsonl", "s")
    (landing / "link.jsonl").symlink_to(secret)  # a file link out of the root
    (landing / "linked-folder").symlink_to(outside, target_is_directory=True)
    (landing / "day" / "inner-link.jsonl").symlink_to(good)  # even a link inside the root
    files, ignored = discover_files([landing])
    assert [f.path for f in files] == [str(good.resolve())]
    assert ignored == []


def test_parquet_names_are_read_literally(tmp_path: Path) -> None:
    frame = {
        "event_id": ["literal"],
        "tenant_id": ["acme"],
        "metric": ["api_calls"],
        "quantity": ["1"],
        "occurred_at": ["2026-01-01T00:00:00Z"],
    }
    pl.DataFrame(frame).write_parquet(tmp_path / "a[1]*.parquet")
    # a file the name would match as a glob pattern
    pl.DataFrame({**frame, "event_id": ["matched-by-glob"]}).write_parquet(tmp_path / "a1x.parquet")
    rows = read_parquet_rows(tmp_path / "a[1]*.parquet")
    assert rows.get_column("event_id").to_list() == ["literal"]
