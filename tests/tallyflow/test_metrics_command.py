"""`tallyflow metrics list|show CODE [--json]` over a real database."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from services.metrics.catalog import create_metric
from tallyflow.cli.app import app as cli
from tallyflow.core.settings import Settings


def test_list_and_show(settings: Settings, engine: Engine) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli, ["metrics", "list", "--json"])
    assert empty.exit_code == 0 and json.loads(empty.stdout) == {"metrics": []}
    with engine.begin() as conn:
        create_metric(
            conn,
            {
                "code": "p95",
                "event_metric": "api.latency",
                "aggregation": "percentile",
                "percentile": "95",
                "value": "properties.ms",
                "group_by": ["route"],
            },
        )
    listed = runner.invoke(cli, ["metrics", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.strip() == (
        "p95: percentile of properties.ms of events api.latency (p95; by route)"
    )
    shown = runner.invoke(cli, ["metrics", "show", "p95", "--json"])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["percentile"] == "95"
    missing = runner.invoke(cli, ["metrics", "show", "nope"])
    assert missing.exit_code == 1 and "metric 'nope' does not exist" in missing.stderr
