"""`tallyflow db downgrade` needs --force and refuses while invoices exist."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from tallyflow.cli.app import app as cli
from tallyflow.core import migrate


def test_downgrade_needs_force_and_no_invoices(engine: Engine) -> None:
    runner = CliRunner()
    head = migrate.current_revision(engine)
    bare = runner.invoke(cli, ["db", "downgrade", "0003"])
    assert bare.exit_code == 2 and "--force" in bare.output
    assert migrate.current_revision(engine) == head

    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO invoices (tenant_id, period_start, period_end, currency, total)"
                " VALUES ('acme', '2026-01-01', '2026-02-01', 'USD', 0)"
            )
        )
    refused = runner.invoke(cli, ["db", "downgrade", "0003", "--force"])
    assert refused.exit_code == 1 and "1 invoices" in refused.output
    assert migrate.current_revision(engine) == head

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM invoices"))  # a draft may be deleted
    done = runner.invoke(cli, ["db", "downgrade", "0003", "--force"])
    assert done.exit_code == 0, done.output
    engine.dispose()
    assert migrate.current_revision(engine) == "0003"
