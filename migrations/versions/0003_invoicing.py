"""Invoicing schema additions (closed-invoice freeze)

Revision ID: 0003
Revises: 0002

A closed invoice is immutable and a void one is final. The database enforces it, so no
code path (nor a hand-typed UPDATE) can change what was issued:
- invoices: a closed row may only become void (setting voided_at); its amounts, currency,
  number, dates and tenant never change; a void row never changes; neither may be deleted.
- invoice_lines: no line of a closed or void invoice may be inserted, updated or deleted.
  Statement-level triggers with transition tables check a bulk write in one join instead
  of one lookup per line (the invoice run writes hundreds of thousands of lines).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INVOICE_FREEZE_FUNCTION = """
CREATE FUNCTION invoices_refuse_frozen_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'invoice % is %: it cannot be deleted', OLD.id, OLD.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF OLD.status = 'void' THEN
        RAISE EXCEPTION 'invoice % is void: it cannot change', OLD.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- OLD.status = 'closed': only the transition to void (with voided_at) is allowed
    IF NEW.status NOT IN ('closed', 'void')
       OR (NEW.tenant_id, NEW.period_start, NEW.period_end, NEW.currency, NEW.total,
           NEW.number, NEW.closed_at, NEW.created_at, NEW.run_id)
          IS DISTINCT FROM
          (OLD.tenant_id, OLD.period_start, OLD.period_end, OLD.currency, OLD.total,
           OLD.number, OLD.closed_at, OLD.created_at, OLD.run_id) THEN
        RAISE EXCEPTION 'invoice % is closed: its amounts and lines are frozen (only void is allowed)', OLD.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END;
$$
"""

LINES_FREEZE_FUNCTION = """
CREATE FUNCTION invoice_lines_refuse_frozen_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    frozen record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT i.id, i.status INTO frozen FROM changed_lines l JOIN invoices i ON i.id = l.invoice_id
        WHERE i.status <> 'draft' LIMIT 1;
    ELSE
        SELECT i.id, i.status INTO frozen FROM old_lines l JOIN invoices i ON i.id = l.invoice_id
        WHERE i.status <> 'draft' LIMIT 1;
        IF frozen IS NULL AND TG_OP = 'UPDATE' THEN
            SELECT i.id, i.status INTO frozen FROM changed_lines l JOIN invoices i ON i.id = l.invoice_id
            WHERE i.status <> 'draft' LIMIT 1;
        END IF;
    END IF;
    IF frozen.id IS NOT NULL THEN
        RAISE EXCEPTION 'invoice % is %: its lines are frozen', frozen.id, frozen.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NULL;
END;
$$
"""

TRIGGERS = [
    "CREATE TRIGGER invoices_frozen_update BEFORE UPDATE ON invoices FOR EACH ROW"
    " WHEN (OLD.status <> 'draft') EXECUTE FUNCTION invoices_refuse_frozen_change()",
    "CREATE TRIGGER invoices_frozen_delete BEFORE DELETE ON invoices FOR EACH ROW"
    " WHEN (OLD.status <> 'draft') EXECUTE FUNCTION invoices_refuse_frozen_change()",
    "CREATE TRIGGER invoice_lines_frozen_insert AFTER INSERT ON invoice_lines"
    " REFERENCING NEW TABLE AS changed_lines FOR EACH STATEMENT"
    " EXECUTE FUNCTION invoice_lines_refuse_frozen_change()",
    "CREATE TRIGGER invoice_lines_frozen_update AFTER UPDATE ON invoice_lines"
    " REFERENCING OLD TABLE AS old_lines NEW TABLE AS changed_lines FOR EACH STATEMENT"
    " EXECUTE FUNCTION invoice_lines_refuse_frozen_change()",
    "CREATE TRIGGER invoice_lines_frozen_delete AFTER DELETE ON invoice_lines"
    " REFERENCING OLD TABLE AS old_lines FOR EACH STATEMENT"
    " EXECUTE FUNCTION invoice_lines_refuse_frozen_change()",
]


def upgrade() -> None:
    op.execute(INVOICE_FREEZE_FUNCTION)
    op.execute(LINES_FREEZE_FUNCTION)
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for name, table in [
        ("invoice_lines_frozen_delete", "invoice_lines"),
        ("invoice_lines_frozen_update", "invoice_lines"),
        ("invoice_lines_frozen_insert", "invoice_lines"),
        ("invoices_frozen_delete", "invoices"),
        ("invoices_frozen_update", "invoices"),
    ]:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS invoice_lines_refuse_frozen_change()")
    op.execute("DROP FUNCTION IF EXISTS invoices_refuse_frozen_change()")
