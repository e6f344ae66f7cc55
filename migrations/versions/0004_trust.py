"""Trust: key scopes, key expiry and last use, the append-only audit log

Revision ID: 0004_trust
Revises: 0003

- api_keys: a third scope `usage.write` (push usage only); `billing.write` only on global
  keys (a CHECK, so no code path can mint a tenant key that rewrites its own bill).
  Existing tenant keys holding billing.write become usage.write + billing.read: they keep
  pushing and reading, and lose plan, override and invoice changes.
- api_keys.expires_on (optional, exclusive: the key stops working that UTC day) and
  last_used_at (updated at most once a minute per key by the API).
- audit_log: who (key id and name), what, tenant, object, before and after, one row per
  change made through the API or the key CLI, written in the change's transaction.
  Append-only in the database: a trigger refuses UPDATE, DELETE and TRUNCATE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0004_trust"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPES_V3 = "ARRAY['billing.read', 'billing.write', 'usage.write']::text[]"
SCOPES_V2 = "ARRAY['billing.read', 'billing.write']::text[]"

AUDIT_REFUSE_FUNCTION = """
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def upgrade() -> None:
    op.drop_constraint(op.f("ck_api_keys_scopes_known"), "api_keys", type_="check")
    # tenant keys with billing.write -> usage.write + billing.read (sorted, de-duplicated)
    op.execute(
        "UPDATE api_keys SET scopes = ARRAY("
        " SELECT DISTINCT s FROM unnest(array_remove(scopes, 'billing.write')"
        " || ARRAY['usage.write', 'billing.read']) AS s ORDER BY s)"
        " WHERE tenant_id IS NOT NULL AND 'billing.write' = ANY(scopes)"
    )
    op.create_check_constraint(
        op.f("ck_api_keys_scopes_known"),
        "api_keys",
        f"scopes <@ {SCOPES_V3} AND cardinality(scopes) > 0",
    )
    op.create_check_constraint(
        op.f("ck_api_keys_write_is_global"),
        "api_keys",
        "tenant_id IS NULL OR NOT ('billing.write' = ANY(scopes))",
    )
    op.add_column("api_keys", sa.Column("expires_on", sa.Date(), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("key_id", sa.BigInteger(), nullable=True),
        sa.Column("key_name", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=True),
        sa.Column("before", pg.JSONB(), nullable=True),
        sa.Column("after", pg.JSONB(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_tenant_id", "audit_log", ["tenant_id", "at"])
    op.execute(AUDIT_REFUSE_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
    op.drop_index("ix_audit_log_tenant_id", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("api_keys", "expires_on")
    op.drop_constraint(op.f("ck_api_keys_write_is_global"), "api_keys", type_="check")
    op.drop_constraint(op.f("ck_api_keys_scopes_known"), "api_keys", type_="check")
    # usage.write did not exist: such keys push with billing.write again
    op.execute(
        "UPDATE api_keys SET scopes = ARRAY("
        " SELECT DISTINCT CASE WHEN s = 'usage.write' THEN 'billing.write' ELSE s END"
        " FROM unnest(scopes) AS s ORDER BY 1)"
        " WHERE 'usage.write' = ANY(scopes)"
    )
    op.create_check_constraint(
        op.f("ck_api_keys_scopes_known"),
        "api_keys",
        f"scopes <@ {SCOPES_V2} AND cardinality(scopes) > 0",
    )
