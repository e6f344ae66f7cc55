"""Webhook endpoint secrets sealed at rest (issue 16: "stored so that signing works")

Revision ID: 0009_spend_secrets
Revises: 0007_spend_controls

- webhook_endpoints.secret (plaintext) becomes secret_ciphertext: the secret sealed with
  TALLYFLOW_SECRET_KEY (a Fernet token, tallyflow/core/secrets.py). Existing rows are
  sealed here, so upgrading a database that holds endpoints needs the key set (otherwise
  the migration stops, nothing changed, with a message naming the setting: exit 2).
- ck_webhook_endpoints_secret_sealed refuses a plaintext secret (`whsec_...`).
- Downgrade opens them again (needs the same key).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_spend_secrets"
down_revision: str | None = "0008_ingest_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_endpoints = sa.table(
    "webhook_endpoints",
    sa.column("id", sa.BigInteger()),
    sa.column("secret", sa.Text()),
    sa.column("secret_ciphertext", sa.Text()),
)


def _box():  # type: ignore[no-untyped-def]
    from tallyflow.core.settings import load_settings

    return load_settings().secret_box()


def _rewrite(source: str, target: str, change: str) -> None:
    """Copy every row's `source` into `target`, sealed or opened by the key."""
    conn = op.get_bind()
    found = conn.execute(
        sa.select(_endpoints.c.id, _endpoints.c[source]).order_by(_endpoints.c.id)
    ).all()
    if not found:
        return
    box = _box()  # SecretKeyError (missing/invalid key): the migration stops here
    transform = box.seal if change == "seal" else box.open
    conn.execute(
        _endpoints.update()
        .where(_endpoints.c.id == sa.bindparam("endpoint_id"))
        .values({target: sa.bindparam("value")}),
        [{"endpoint_id": i, "value": transform(v)} for i, v in found],
    )


def upgrade() -> None:
    op.add_column("webhook_endpoints", sa.Column("secret_ciphertext", sa.Text(), nullable=True))
    _rewrite("secret", "secret_ciphertext", "seal")
    op.alter_column("webhook_endpoints", "secret_ciphertext", nullable=False)
    op.drop_column("webhook_endpoints", "secret")
    op.create_check_constraint(
        op.f("ck_webhook_endpoints_secret_sealed"),
        "webhook_endpoints",
        "secret_ciphertext NOT LIKE 'whsec\\_%'",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_webhook_endpoints_secret_sealed"), "webhook_endpoints", type_="check"
    )
    op.add_column("webhook_endpoints", sa.Column("secret", sa.Text(), nullable=True))
    _rewrite("secret_ciphertext", "secret", "open")
    op.alter_column("webhook_endpoints", "secret", nullable=False)
    op.drop_column("webhook_endpoints", "secret_ciphertext")
