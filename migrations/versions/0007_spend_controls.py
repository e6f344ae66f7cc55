"""Spend controls (contract 5b): commitments, prepaid credits, alerts, spend caps, webhooks

Revision ID: 0007_spend_controls
Revises: 0006_billable_metrics

- plans.minimum_commitment (money per month, prorated like base_fee; null = none).
- invoice_lines: two new kinds, `commitment_true_up` and `credit` (a credit line's amount is
  negative; 0005 already lifted the sign check for the signed deltas of corrections).
- credit_grants (remaining never below 0 nor above amount) and credit_applications (one
  per grant and invoice).
- alerts (unique per definition, so re-PUTting the same set keeps their triggers) and
  alert_triggers (primary key (alert_id, period_start): an alert fires once per period).
- spend_caps and tenant_spend (the period's spend as of the last ingest/backfill run).
- webhook_endpoints, webhook_events (the outbox) and webhook_deliveries (the delivery log).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_spend_controls"
down_revision: str | None = "0006_billable_metrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=True),
        sa.Column("threshold", sa.Numeric(precision=38, scale=6), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(kind = 'spend') = (metric IS NULL)", name=op.f("ck_alerts_metric_for_usage")
        ),
        sa.CheckConstraint(
            "kind IN ('usage_absolute', 'usage_percent', 'spend')",
            name=op.f("ck_alerts_kind_known"),
        ),
        sa.CheckConstraint(
            "tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'",
            name=op.f("ck_alerts_tenant_id_format"),
        ),
        sa.CheckConstraint("threshold > 0", name=op.f("ck_alerts_threshold_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint(
            "tenant_id",
            "kind",
            "metric",
            "threshold",
            name="uq_alerts_definition",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "credit_grants",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.Column("remaining", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "currency ~ '^[A-Z]{3}$'", name=op.f("ck_credit_grants_currency_format")
        ),
        sa.CheckConstraint(
            "tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'",
            name=op.f("ck_credit_grants_tenant_id_format"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_grants_amount_positive")),
        sa.CheckConstraint(
            "expires_on IS NULL OR expires_on > effective_from",
            name=op.f("ck_credit_grants_dates_ordered"),
        ),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= amount",
            name=op.f("ck_credit_grants_remaining_in_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_grants")),
    )
    op.create_index(
        "ix_credit_grants_tenant_currency", "credit_grants", ["tenant_id", "currency"], unique=False
    )
    op.create_table(
        "spend_caps",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_spend_caps_amount_non_negative")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_spend_caps")),
    )
    op.create_table(
        "tenant_spend",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_tenant_spend_currency_format")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_spend")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("url ~ '^https?://'", name=op.f("ck_webhook_endpoints_url_scheme")),
        sa.CheckConstraint(
            "cardinality(events) > 0", name=op.f("ck_webhook_endpoints_events_not_empty")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "type IN ('usage.threshold_reached', 'spend.threshold_reached', 'invoice.closed', 'invoice.voided')",
            name=op.f("ck_webhook_events_type_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_table(
        "alert_triggers",
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measure", sa.Numeric(precision=38, scale=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_triggers_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", "period_start", name=op.f("pk_alert_triggers")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'cancelled')",
            name=op.f("ck_webhook_deliveries_status_known"),
        ),
        sa.CheckConstraint(
            "attempts >= 0", name=op.f("ck_webhook_deliveries_attempts_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_events.id"],
            name=op.f("fk_webhook_deliveries_event_id_webhook_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "id"], unique=False
    )
    op.create_table(
        "credit_applications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("grant_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_applications_amount_positive")),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["credit_grants.id"],
            name=op.f("fk_credit_applications_grant_id_credit_grants"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_credit_applications_invoice_id_invoices"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_applications")),
        sa.UniqueConstraint("grant_id", "invoice_id", name="uq_credit_applications_grant_invoice"),
    )
    op.create_index(
        "ix_credit_applications_invoice", "credit_applications", ["invoice_id"], unique=False
    )
    op.add_column(
        "plans", sa.Column("minimum_commitment", sa.Numeric(precision=24, scale=6), nullable=True)
    )
    op.create_check_constraint(
        op.f("ck_plans_minimum_commitment_non_negative"),
        "plans",
        "minimum_commitment IS NULL OR minimum_commitment >= 0",
    )
    op.drop_constraint(op.f("ck_invoice_lines_kind_known"), "invoice_lines", type_="check")
    op.create_check_constraint(
        op.f("ck_invoice_lines_kind_known"),
        "invoice_lines",
        "kind IN ('base_fee', 'usage', 'commitment_true_up', 'credit')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_invoice_lines_kind_known"), "invoice_lines", type_="check")
    # NOTE: lines of the new kinds cannot survive the old constraints; closed invoices
    # holding them are frozen, so a downgrade of a database that used them fails loudly.
    op.create_check_constraint(
        op.f("ck_invoice_lines_kind_known"), "invoice_lines", "kind IN ('base_fee', 'usage')"
    )
    op.drop_constraint(op.f("ck_plans_minimum_commitment_non_negative"), "plans", type_="check")
    op.drop_column("plans", "minimum_commitment")
    op.drop_index("ix_credit_applications_invoice", table_name="credit_applications")
    op.drop_table("credit_applications")
    op.drop_index("ix_webhook_deliveries_endpoint", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("alert_triggers")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
    op.drop_table("tenant_spend")
    op.drop_table("spend_caps")
    op.drop_index("ix_credit_grants_tenant_currency", table_name="credit_grants")
    op.drop_table("credit_grants")
    op.drop_table("alerts")
