"""A run with nothing to stage commits through `commit_idle_run` (no readers imported): it
must record exactly what `commit_ingest` records with nothing staged, and the no-op path's
modules must not import Polars, DuckDB, Pandera or pyarrow."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.ingest.aggregate import aggregate_usage_days
from services.ingest.commit import commit_idle_run, commit_ingest
from services.ingest.staging import REJECTED_SCHEMA, Staged
from services.job_runs import start_job_run
from services.metrics.catalog import create_metric
from tallyflow.core.settings import Settings

NOW = dt.datetime(2026, 10, 20, 12, 0, tzinfo=dt.UTC)


def _job_run(engine: Engine, run_id: object) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT status, summary FROM job_runs WHERE id = :id"), {"id": run_id}
        ).one()
    summary = row.summary if isinstance(row.summary, dict) else json.loads(row.summary)
    return {"status": row.status, "summary": summary}


@pytest.mark.parametrize("with_metric", [False, True], ids=["no metric", "a billable metric"])
def test_idle_commit_records_what_the_full_commit_records(
    settings: Settings, engine: Engine, with_metric: bool
) -> None:
    if with_metric:  # NOTE: then the summary carries metric_unreadable {code: 0}
        with engine.begin() as conn:
            create_metric(
                conn, {"code": "calls", "event_metric": "api.calls", "aggregation": "sum"}
            )
    lake = settings.lake_location.url
    ignored = ["/landing/notes.txt"]

    full_id = start_job_run(engine, "ingest_usage", {})
    empty = Staged(files=[], rejected=pl.DataFrame(schema=REJECTED_SCHEMA))
    full = commit_ingest(
        engine, full_id, empty, [], aggregate_usage_days([]), 3, ignored, NOW, lake_root=lake
    )
    idle_id = start_job_run(engine, "ingest_usage", {})
    idle = commit_idle_run(engine, idle_id, 3, ignored, NOW)

    assert idle.to_json() == full.to_json()
    assert ("calls" in idle.metric_unreadable) is with_metric
    assert idle.examples == full.examples and idle.ignored_files == full.ignored_files
    assert _job_run(engine, idle_id) == _job_run(engine, full_id)
    assert _job_run(engine, idle_id)["status"] == "succeeded"


def test_the_no_op_path_imports_no_reader_library() -> None:
    # NOTE: in a fresh interpreter (this one has them all loaded): the modules a no-op
    # `tallyflow ingest` imports.
    code = (
        "import sys\n"
        "import flows.ingest_usage, tasks.ingest, services.ingest.commit\n"
        "import services.ingest.discovery, tallyflow.cli.app, tallyflow.core.migrate\n"
        "heavy = ('polars', 'duckdb', 'pandera', 'pyarrow', 'numpy', 'alembic', 'mako')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
