"""Invoice lines' references checked once per statement, not once per line

Revision ID: 0012_lines_reference_check
Revises: 0011_lines_freeze_check

Why: the invoice run writes a line per group, quota and subscription window (3,150,000
lines for 100,000 tenants with billable metrics). The two declared foreign keys of
invoice_lines (invoice_id -> invoices ON DELETE CASCADE, subscription_id -> subscriptions
ON DELETE RESTRICT) each run a row-level check with its own lookup and row lock per line:
about 7 us of server CPU each, half the cost of a line (bench/README.md, "Invoice run",
`bench/invoice_lines_floor.py`). The statement-level trigger that already checks a bulk
write against `invoices` (the freeze rule, 0003/0011) now checks the references too, once
per statement, set-based. The rules themselves are unchanged, and one is stronger:

- every line names an existing invoice, and an existing subscription or none; the rows
  referred to are locked FOR KEY SHARE to the end of the transaction (what a foreign key
  check locks), so nobody can delete them under the writer; a missing one is refused with
  SQLSTATE 23503 (foreign_key_violation, as before) naming the line's invoice and the id;
- new: a line's subscription belongs to its invoice's tenant (a foreign key could not say
  that);
- deleting invoices deletes their lines (the old ON DELETE CASCADE), in one statement;
- deleting a subscription some line refers to is refused (the old RESTRICT), 23503;
- an invoice's or a subscription's id never changes (the old keys refused changing a
  referenced id; now no id changes, referenced or not).

NOTE (what a declared key did that this does not): under REPEATABLE READ, a transaction
that deletes an invoice while another transaction adds lines to it and commits first would
not see those lines, so they would outlive their invoice (a declared key raises a
serialization failure there). Every writer of invoice lines (the invoice run, corrections,
credits at close) and every deleter of invoices (the run's stale drafts) holds the period's
advisory lock (`services.invoicing.generation.invoice_run_transaction`), so they never
interleave; a hand-written DELETE under READ COMMITTED waits on the key-share lock and then
sees the committed lines. TRUNCATE of invoices alone would leave lines behind; nothing
truncates invoices (the migrations' downgrade refuses while invoices exist).

Downgrade restores 0011's trigger function and the two foreign keys (validated).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_lines_reference_check"
down_revision: str | None = "0011_lines_freeze_check"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NOTE: the freeze rule is checked first, so a write to a closed invoice keeps its 55000
# error; then the references. Each check is one aggregate over the statement's rows (the
# planner costs it as a whole join, see 0011), and the missing id is looked up only when
# there is one.
LINES_CHECK_FUNCTION = """
CREATE OR REPLACE FUNCTION invoice_lines_refuse_frozen_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    frozen_id bigint;
    frozen_status text;
    wanted bigint;
    found bigint;
    missing record;
    mismatched_id bigint;
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
    IF TG_OP = 'DELETE' THEN
        RETURN NULL;
    END IF;

    -- references: each line's invoice exists, locked as a foreign key check locks it
    SELECT count(DISTINCT invoice_id) INTO wanted FROM changed_lines;
    SELECT count(*) INTO found FROM (
        SELECT 1 FROM invoices
        WHERE id IN (SELECT invoice_id FROM changed_lines) FOR KEY SHARE
    ) AS locked;
    IF found < wanted THEN
        SELECT l.invoice_id, l.line_no INTO missing FROM changed_lines l
        WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = l.invoice_id)
        ORDER BY l.invoice_id, l.line_no LIMIT 1;
        RAISE EXCEPTION 'invoice line % of invoice %: invoice % does not exist',
            missing.line_no, missing.invoice_id, missing.invoice_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- ... and its subscription, if it names one
    SELECT count(DISTINCT subscription_id) INTO wanted FROM changed_lines;
    SELECT count(*) INTO found FROM (
        SELECT 1 FROM subscriptions
        WHERE id IN (SELECT subscription_id FROM changed_lines) FOR KEY SHARE
    ) AS locked;
    IF found < wanted THEN
        SELECT l.invoice_id, l.line_no, l.subscription_id INTO missing FROM changed_lines l
        WHERE l.subscription_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = l.subscription_id)
        ORDER BY l.invoice_id, l.line_no LIMIT 1;
        RAISE EXCEPTION 'invoice line % of invoice %: subscription % does not exist',
            missing.line_no, missing.invoice_id, missing.subscription_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- ... of the invoice's tenant
    SELECT min(p.invoice_id) INTO mismatched_id
    FROM (SELECT DISTINCT invoice_id, subscription_id FROM changed_lines
          WHERE subscription_id IS NOT NULL) AS p
    JOIN invoices i ON i.id = p.invoice_id
    JOIN subscriptions s ON s.id = p.subscription_id
    WHERE s.tenant_id <> i.tenant_id;
    IF mismatched_id IS NOT NULL THEN
        SELECT l.invoice_id, l.line_no, l.subscription_id, s.tenant_id AS owner,
               i.tenant_id AS tenant INTO missing
        FROM changed_lines l
        JOIN invoices i ON i.id = l.invoice_id
        JOIN subscriptions s ON s.id = l.subscription_id
        WHERE l.invoice_id = mismatched_id AND s.tenant_id <> i.tenant_id
        ORDER BY l.line_no LIMIT 1;
        RAISE EXCEPTION 'invoice line % of invoice % (tenant %): subscription % is tenant %''s',
            missing.line_no, missing.invoice_id, missing.tenant, missing.subscription_id,
            missing.owner
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$
"""

INVOICES_DELETE_LINES_FUNCTION = """
CREATE FUNCTION invoices_delete_their_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM invoice_lines WHERE invoice_id IN (SELECT id FROM deleted_invoices);
    RETURN NULL;
END;
$$
"""

SUBSCRIPTIONS_REFUSE_DELETE_FUNCTION = """
CREATE FUNCTION subscriptions_refuse_invoiced_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    line record;
BEGIN
    SELECT l.subscription_id, l.invoice_id INTO line FROM invoice_lines l
    WHERE l.subscription_id IN (SELECT id FROM deleted_subscriptions)
    ORDER BY l.subscription_id, l.invoice_id LIMIT 1;
    IF line.subscription_id IS NOT NULL THEN
        RAISE EXCEPTION 'subscription % is invoiced (invoice %): it cannot be deleted',
            line.subscription_id, line.invoice_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$
"""

REFUSE_ID_CHANGE_FUNCTION = """
CREATE FUNCTION refuse_id_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% %: its id cannot change (to %)', TG_TABLE_NAME, OLD.id, NEW.id
        USING ERRCODE = 'foreign_key_violation';
END;
$$
"""

TRIGGERS = [
    "CREATE TRIGGER invoices_delete_lines AFTER DELETE ON invoices"
    " REFERENCING OLD TABLE AS deleted_invoices FOR EACH STATEMENT"
    " EXECUTE FUNCTION invoices_delete_their_lines()",
    "CREATE TRIGGER subscriptions_invoiced_delete AFTER DELETE ON subscriptions"
    " REFERENCING OLD TABLE AS deleted_subscriptions FOR EACH STATEMENT"
    " EXECUTE FUNCTION subscriptions_refuse_invoiced_delete()",
    "CREATE TRIGGER invoices_fixed_id BEFORE UPDATE OF id ON invoices FOR EACH ROW"
    " WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_id_change()",
    "CREATE TRIGGER subscriptions_fixed_id BEFORE UPDATE OF id ON subscriptions FOR EACH ROW"
    " WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_id_change()",
]
TRIGGER_TABLES = [
    ("invoices_delete_lines", "invoices"),
    ("subscriptions_invoiced_delete", "subscriptions"),
    ("invoices_fixed_id", "invoices"),
    ("subscriptions_fixed_id", "subscriptions"),
]


# NOTE: a declared key's checks and cascades run as the table's owner, whatever the writer
# may do; so do these (SECURITY DEFINER): a role that may insert lines but not update
# subscriptions (FOR KEY SHARE needs UPDATE rights) or delete invoices but not lines behaves
# as before. The search path is pinned to the schema the tables are in, pg_temp last, so
# a caller's temporary table cannot stand in for `invoices`.
DEFINER_FUNCTIONS = (
    "invoice_lines_refuse_frozen_change",
    "invoices_delete_their_lines",
    "subscriptions_refuse_invoiced_delete",
)


def _run_as_owner() -> None:
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    for function in DEFINER_FUNCTIONS:
        op.execute(
            f'ALTER FUNCTION {function}() SECURITY DEFINER SET search_path = "{schema}", pg_temp'
        )


def upgrade() -> None:
    op.drop_constraint(
        op.f("fk_invoice_lines_invoice_id_invoices"), "invoice_lines", type_="foreignkey"
    )
    op.drop_constraint(
        op.f("fk_invoice_lines_subscription_id_subscriptions"),
        "invoice_lines",
        type_="foreignkey",
    )
    op.execute(LINES_CHECK_FUNCTION)
    op.execute(INVOICES_DELETE_LINES_FUNCTION)
    op.execute(SUBSCRIPTIONS_REFUSE_DELETE_FUNCTION)
    op.execute(REFUSE_ID_CHANGE_FUNCTION)
    for statement in TRIGGERS:
        op.execute(statement)
    _run_as_owner()


def downgrade() -> None:
    import importlib.util
    from pathlib import Path

    for name, table in TRIGGER_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for function in (
        "refuse_id_change",
        "subscriptions_refuse_invoiced_delete",
        "invoices_delete_their_lines",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    spec = importlib.util.spec_from_file_location(
        "tallyflow_migration_0011", Path(__file__).with_name("0011_lines_freeze_check.py")
    )
    assert spec is not None and spec.loader is not None
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(previous.LINES_FREEZE_FUNCTION)
    op.create_foreign_key(
        op.f("fk_invoice_lines_subscription_id_subscriptions"),
        "invoice_lines",
        "subscriptions",
        ["subscription_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_foreign_key(
        op.f("fk_invoice_lines_invoice_id_invoices"),
        "invoice_lines",
        "invoices",
        ["invoice_id"],
        ["id"],
        ondelete="CASCADE",
    )
