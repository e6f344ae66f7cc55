"""API schema additions (quota checks, API keys)

No schema change turned out to be needed by the API, so this revision is a no-op kept
for its slot (0003 builds on it):

- `no_subscription` vs `not_entitled` is answered by one statement with two index
  probes (`sql/select_quota_check.sql`: subscriptions by ix_subscriptions_tenant_starts,
  quota_usage by its primary key), and the API answers checks from an in-process copy of
  the same two facts, kept current by NOTIFY from `refresh_quota_usage`.
- API keys use the 0001 table as it is: `prefix` (unique) finds the row, `key_hash`
  (SHA-256 of the whole key) is compared in constant time, `revoked_at` revokes.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
