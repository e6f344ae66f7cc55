"""Invoicing depth: corrections (kinds), gapless numbers per (series, year)

Revision ID: 0004_invoicing_depth
Revises: 0003

- invoices.kind (`invoice`, `adjustment`, `credit_note`) and invoices.corrects_invoice_id
  (the closed invoice a correction corrects; set exactly on corrections). The
  one-live-invoice rule now reads "at most one non-void invoice of kind `invoice` per
  tenant and period"; a closed invoice has at most one draft correction at a time.
- Totals are signed by kind: a credit note's total is negative, an invoice's or an
  adjustment's is not; correction lines carry signed deltas, so the per-line
  "amount >= 0" check goes (line amounts of kind `invoice` stay >= 0 by construction).
- invoice_number_counters: one row per (series, year) holding the last number given.
  Closing increments it in the closing transaction, so a close that rolls back gives its
  numbers back and concurrent closes queue on the row: numbers are gapless. The
  sequence invoice_number_seq (which left gaps) is dropped.
- The freeze trigger of 0003 also freezes kind and corrects_invoice_id of a closed invoice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_invoicing_depth"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FREEZE_FUNCTION = """
CREATE OR REPLACE FUNCTION invoices_refuse_frozen_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
           NEW.number, NEW.closed_at, NEW.created_at, NEW.run_id, NEW.kind,
           NEW.corrects_invoice_id)
          IS DISTINCT FROM
          (OLD.tenant_id, OLD.period_start, OLD.period_end, OLD.currency, OLD.total,
           OLD.number, OLD.closed_at, OLD.created_at, OLD.run_id, OLD.kind,
           OLD.corrects_invoice_id) THEN
        RAISE EXCEPTION 'invoice % is closed: its amounts and lines are frozen (only void is allowed)', OLD.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END;
$$
"""

FREEZE_FUNCTION_0003 = """
CREATE OR REPLACE FUNCTION invoices_refuse_frozen_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'invoice % is %: it cannot be deleted', OLD.id, OLD.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF OLD.status = 'void' THEN
        RAISE EXCEPTION 'invoice % is void: it cannot change', OLD.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
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


def upgrade() -> None:
    op.add_column(
        "invoices", sa.Column("kind", sa.Text(), server_default="invoice", nullable=False)
    )
    op.add_column("invoices", sa.Column("corrects_invoice_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_invoices_corrects_invoice_id_invoices"),
        "invoices",
        "invoices",
        ["corrects_invoice_id"],
        ["id"],
    )
    op.create_check_constraint(
        op.f("ck_invoices_kind_known"),
        "invoices",
        "kind IN ('invoice', 'adjustment', 'credit_note')",
    )
    op.create_check_constraint(
        op.f("ck_invoices_corrections_name_their_invoice"),
        "invoices",
        "(kind = 'invoice') = (corrects_invoice_id IS NULL)",
    )
    op.drop_constraint(op.f("ck_invoices_total_non_negative"), "invoices", type_="check")
    op.create_check_constraint(
        op.f("ck_invoices_total_signed_by_kind"),
        "invoices",
        "(kind = 'credit_note' AND total < 0) OR (kind <> 'credit_note' AND total >= 0)",
    )
    op.drop_constraint(op.f("ck_invoice_lines_amount_non_negative"), "invoice_lines", type_="check")
    op.drop_index("uq_invoices_tenant_period_live", table_name="invoices")
    op.create_index(
        "uq_invoices_tenant_period_live",
        "invoices",
        ["tenant_id", "period_start"],
        unique=True,
        postgresql_where=sa.text("status <> 'void' AND kind = 'invoice'"),
    )
    op.create_index(
        "uq_invoices_one_draft_correction",
        "invoices",
        ["corrects_invoice_id"],
        unique=True,
        postgresql_where=sa.text("status = 'draft'"),
    )
    op.create_index(
        op.f("ix_invoices_corrects_invoice_id"), "invoices", ["corrects_invoice_id"], unique=False
    )
    op.create_table(
        "invoice_number_counters",
        sa.Column("series", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "last_number >= 0", name=op.f("ck_invoice_number_counters_last_number_non_negative")
        ),
        sa.PrimaryKeyConstraint("series", "year", name=op.f("pk_invoice_number_counters")),
    )
    op.execute(FREEZE_FUNCTION)
    op.execute("DROP SEQUENCE IF EXISTS invoice_number_seq")


def downgrade() -> None:
    conn = op.get_bind()
    corrections = conn.execute(
        sa.text("SELECT count(*) FROM invoices WHERE kind <> 'invoice'")
    ).scalar_one()
    if corrections:
        raise RuntimeError(
            f"{corrections} corrections (adjustments, credit notes) exist: revision 0003 cannot"
            " hold them; refusing to downgrade"
        )
    op.execute("CREATE SEQUENCE IF NOT EXISTS invoice_number_seq START 1")
    op.execute(FREEZE_FUNCTION_0003)
    op.drop_table("invoice_number_counters")
    op.drop_index(op.f("ix_invoices_corrects_invoice_id"), table_name="invoices")
    op.drop_index("uq_invoices_one_draft_correction", table_name="invoices")
    op.drop_index("uq_invoices_tenant_period_live", table_name="invoices")
    op.create_index(
        "uq_invoices_tenant_period_live",
        "invoices",
        ["tenant_id", "period_start"],
        unique=True,
        postgresql_where=sa.text("status <> 'void'"),
    )
    op.create_check_constraint(
        op.f("ck_invoice_lines_amount_non_negative"), "invoice_lines", "amount >= 0"
    )
    op.drop_constraint(op.f("ck_invoices_total_signed_by_kind"), "invoices", type_="check")
    op.create_check_constraint(op.f("ck_invoices_total_non_negative"), "invoices", "total >= 0")
    op.drop_constraint(
        op.f("ck_invoices_corrections_name_their_invoice"), "invoices", type_="check"
    )
    op.drop_constraint(op.f("ck_invoices_kind_known"), "invoices", type_="check")
    op.drop_constraint(
        op.f("fk_invoices_corrects_invoice_id_invoices"), "invoices", type_="foreignkey"
    )
    op.drop_column("invoices", "corrects_invoice_id")
    op.drop_column("invoices", "kind")
