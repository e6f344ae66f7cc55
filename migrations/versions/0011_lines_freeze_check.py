"""The invoice-lines freeze check without a LIMIT 1 join (first invoice runs were quadratic)

Revision ID: 0011_lines_freeze_check
Revises: 0010_subscription_windows

The statement-level triggers of 0003 look for a changed line whose invoice is not a draft.
Written as `... JOIN invoices ... WHERE status <> 'draft' LIMIT 1`, the planner expects an
early match and picks a fast-start nested loop; the match never comes (every line of an
invoice run belongs to a draft), so a COPY of N lines into M fresh invoices cost N x M
comparisons: an invoice run of 20,000 tenants spent 400 s of Postgres CPU in it on its
first run (bench/README.md, "Invoice run"). The check is now an aggregate over the whole
join (`min(invoice id)`), which the planner costs as a full join (hash or index join,
linear), then reads that invoice's status. Same rule, same error, same SQLSTATE.
Downgrade restores 0003's function.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_lines_freeze_check"
down_revision: str | None = "0010_subscription_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINES_FREEZE_FUNCTION = """
CREATE OR REPLACE FUNCTION invoice_lines_refuse_frozen_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    frozen_id bigint;
    frozen_status text;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT min(i.id) INTO frozen_id
        FROM changed_lines l JOIN invoices i ON i.id = l.invoice_id
        WHERE i.status <> 'draft';
    END IF;
    IF frozen_id IS NULL AND TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT min(i.id) INTO frozen_id
        FROM old_lines l JOIN invoices i ON i.id = l.invoice_id
        WHERE i.status <> 'draft';
    END IF;
    IF frozen_id IS NOT NULL THEN
        SELECT i.status INTO frozen_status FROM invoices i WHERE i.id = frozen_id;
        RAISE EXCEPTION 'invoice % is %: its lines are frozen', frozen_id, frozen_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    op.execute(LINES_FREEZE_FUNCTION)


def downgrade() -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "tallyflow_migration_0003", Path(__file__).with_name("0003_invoicing.py")
    )
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    op.execute(
        old.LINES_FREEZE_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    )
