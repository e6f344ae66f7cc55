"""The key index holds a 64-bit hash of each key and its day, not the key and its content

Revision ID: 0014_event_key_hashes
Revises: 0013_lines_check_name

Since 0008 `event_keys` held every lake event's (tenant_id, event_id) and its standing
content under a (tenant_id, event_id) primary key: about 4.4 us a key to insert (bench/
README.md, issue 12), half of a 2M-event ingest. It now holds `key_hash` (the stable hash
of the key: sql/duckdb/ingest/create_event_key_hash.sql) and the event's `usage_date`,
with a plain (not unique) index on the hash: a match is a candidate, and the standing
version is read from the committed lake files of the candidate's day (services/ingest/
dedupe.py `KeyIndex`). The hash cannot be computed by Postgres the way DuckDB computes it,
so the index is not converted: upgrade and downgrade empty it and mark every manifest file
unindexed, and the next ingest run rebuilds it from the lake before it dedupes anything
(the mechanism of 0008; one transaction; a crash leaves the files unindexed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_event_key_hashes"
down_revision: str | None = "0013_lines_check_name"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNINDEX_LAKE = "UPDATE lake_files SET keys_indexed = false"


def upgrade() -> None:
    op.drop_table("event_keys")
    op.create_table(
        "event_keys",
        sa.Column("key_hash", sa.BigInteger(), nullable=False),
        sa.Column("usage_date", sa.Date(), nullable=False),
    )
    op.create_index("ix_event_keys_key_hash", "event_keys", ["key_hash"], unique=False)
    op.execute(UNINDEX_LAKE)


def downgrade() -> None:
    op.drop_table("event_keys")
    op.create_table(
        "event_keys",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.LargeBinary(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("quantity_micros", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "event_id", name=op.f("pk_event_keys")),
    )
    op.execute(UNINDEX_LAKE)
