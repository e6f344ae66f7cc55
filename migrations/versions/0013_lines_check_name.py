"""The invoice lines' statement check is named for what it checks

Revision ID: 0013_lines_check_name
Revises: 0012_lines_reference_check

Since 0012 the function behind the lines' statement triggers checks every bulk write of
invoice lines against the freeze rule (0003/0011) and against their references (the
invoice, the subscription, the subscription's tenant); its 0003 name,
`invoice_lines_refuse_frozen_change`, said only the first. Renamed to
`invoice_lines_check_statement`. ALTER FUNCTION ... RENAME keeps everything else: the
triggers call the function by its oid, and its body, owner, SECURITY DEFINER and pinned
search path are the function's own. Downgrade renames it back (0012's downgrade and 0003's
name the old one).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_lines_check_name"
down_revision: str | None = "0012_lines_reference_check"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "invoice_lines_refuse_frozen_change"
NEW = "invoice_lines_check_statement"


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {OLD}() RENAME TO {NEW}")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {NEW}() RENAME TO {OLD}")
