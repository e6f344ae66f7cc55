"""Ingest cost flat with history (issue 12 item 3): landing stats, event key index, retired lake files

Revision ID: 0008_ingest_history
Revises: 0007_spend_controls

- landing_files: the (size, mtime) of each landing path whose content the ledger knows, so
  a run skips a known file without reading it (one lookup per run by the primary key).
- event_keys: (tenant_id, event_id) -> the standing content (metric, quantity in micros,
  occurred_at) of every event in the lake; dedupe is an anti-join against it. Written in
  the run's transaction with the manifest. event_id is bytea: its UTF-8 bytes (an event id
  may hold a NUL, which Postgres text cannot).
- lake_files.keys_indexed: whether a manifest file's keys are in event_keys. Files listed
  before this revision start false; the next ingest run indexes them (in one transaction)
  before it dedupes anything. New files are listed with true.
- lake_files_retired: lake files a compaction took out of the manifest (or merged before
  they were listed), moved to the trash after the commit; a crash between commit and move
  leaves the row, and the next run moves them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_ingest_history"
down_revision: str | None = "0007_spend_controls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "landing_files",
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["ingest_files.sha256"], name=op.f("fk_landing_files_sha256_ingest_files")
        ),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_landing_files")),
    )
    op.create_table(
        "event_keys",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.LargeBinary(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("quantity_micros", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "event_id", name=op.f("pk_event_keys")),
    )
    op.add_column(
        "lake_files",
        sa.Column("keys_indexed", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_lake_files_unindexed",
        "lake_files",
        ["path"],
        unique=False,
        postgresql_where=sa.text("NOT keys_indexed"),
    )
    op.create_table(
        "lake_files_retired",
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["job_runs.id"], name=op.f("fk_lake_files_retired_run_id_job_runs")
        ),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_lake_files_retired")),
    )


def downgrade() -> None:
    op.drop_table("lake_files_retired")
    op.drop_index("ix_lake_files_unindexed", table_name="lake_files")
    op.drop_column("lake_files", "keys_indexed")
    op.drop_table("event_keys")
    op.drop_table("landing_files")
