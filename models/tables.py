"""SQLAlchemy tables: the system of record. Money and quantities are NUMERIC, never float.

Quantities: NUMERIC(38,6) for sums (a single event is at most 1e12 with 6 decimals, sums
need more digits); money: NUMERIC(24,6) (line amounts are rounded to the currency's minor
unit, at most 6 decimals covers every ISO 4217 currency with room to spare).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from models.identifiers import METRIC_PATTERN, PLAN_CODE_PATTERN, TENANT_ID_PATTERN

Quantity = sa.Numeric(38, 6, asdecimal=True)
EventQuantity = sa.Numeric(19, 6, asdecimal=True)
Money = sa.Numeric(24, 6, asdecimal=True)
UtcTimestamp = sa.DateTime(timezone=True)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# NOTE: sum/count/max measure events directly (section 4); the others need a billable
# metric (section 4a, table `metrics`).
AGGREGATIONS_SQL = (
    "aggregation IN ('sum', 'count', 'max', 'unique_count', 'latest', 'time_weighted_sum',"
    " 'percentile')"
)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


def _now() -> sa.TextClause:
    return sa.text("now()")


class Plan(Base):
    """A price plan: base fee per calendar month and one quota per metric."""

    __tablename__ = "plans"
    __table_args__ = (
        sa.CheckConstraint(f"code ~ '{PLAN_CODE_PATTERN}'", name="code_format"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        sa.CheckConstraint("base_fee >= 0", name="base_fee_non_negative"),
        sa.CheckConstraint(
            "minimum_commitment IS NULL OR minimum_commitment >= 0",
            name="minimum_commitment_non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(sa.Text, unique=True)
    name: Mapped[str] = mapped_column(sa.Text)
    currency: Mapped[str] = mapped_column(sa.Text)
    base_fee: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    # money per calendar month, prorated by days like base_fee (contract 5b); null = none
    minimum_commitment: Mapped[Decimal | None] = mapped_column(Money)

    quotas: Mapped[list[PlanQuota]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", order_by="PlanQuota.metric"
    )


class PlanQuota(Base):
    """One metric of a plan: aggregation, allowance, limit, enforcement and pricing."""

    __tablename__ = "plan_quotas"
    __table_args__ = (
        sa.UniqueConstraint("plan_id", "metric", name="uq_plan_quotas_plan_metric"),
        sa.CheckConstraint(f"metric ~ '{METRIC_PATTERN}'", name="metric_format"),
        sa.CheckConstraint(AGGREGATIONS_SQL, name="aggregation_known"),
        sa.CheckConstraint("enforcement IN ('hard', 'soft')", name="enforcement_known"),
        sa.CheckConstraint("included >= 0", name="included_non_negative"),
        sa.CheckConstraint('"limit" IS NULL OR "limit" >= 0', name="limit_non_negative"),
        sa.CheckConstraint(
            "pricing_model IN ('per_unit', 'graduated', 'volume', 'package', 'matrix')",
            name="pricing_model_known",
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(sa.Text)
    aggregation: Mapped[str] = mapped_column(sa.Text, server_default="sum")
    included: Mapped[Decimal] = mapped_column(Quantity, server_default="0")
    limit: Mapped[Decimal | None] = mapped_column(Quantity)
    enforcement: Mapped[str] = mapped_column(sa.Text, server_default="hard")
    pricing_model: Mapped[str] = mapped_column(sa.Text)
    pricing: Mapped[dict[str, Any]] = mapped_column(pg.JSONB)

    plan: Mapped[Plan] = relationship(back_populates="quotas")


class Subscription(Base):
    """A tenant on a plan from starts_on (inclusive) to ends_on (exclusive, null = open).

    NOTE: overlapping subscriptions of one tenant are refused by the trigger
    `subscriptions_no_overlap` (btree_gist, needed for an exclusion constraint on
    tenant_id + daterange, is not in the embedded Postgres build).
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.CheckConstraint(f"tenant_id ~ '{TENANT_ID_PATTERN}'", name="tenant_id_format"),
        sa.CheckConstraint("ends_on IS NULL OR ends_on > starts_on", name="dates_ordered"),
        sa.Index("ix_subscriptions_tenant_starts", "tenant_id", "starts_on"),
        sa.Index("ix_subscriptions_window", "starts_on", "ends_on"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.Text)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id", ondelete="RESTRICT"))
    starts_on: Mapped[dt.date] = mapped_column(sa.Date)
    ends_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())

    plan: Mapped[Plan] = relationship()


class QuotaOverride(Base):
    """Per tenant and metric: replaces the plan's limit/included/enforcement (null = keep)."""

    __tablename__ = "quota_overrides"
    __table_args__ = (
        sa.CheckConstraint(f"metric ~ '{METRIC_PATTERN}'", name="metric_format"),
        sa.CheckConstraint(
            "enforcement IS NULL OR enforcement IN ('hard', 'soft')", name="enforcement_known"
        ),
        sa.CheckConstraint("included IS NULL OR included >= 0", name="included_non_negative"),
        sa.CheckConstraint('"limit" IS NULL OR "limit" >= 0', name="limit_non_negative"),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_from IS NULL OR effective_to > effective_from",
            name="dates_ordered",
        ),
        sa.Index("ix_quota_overrides_tenant_metric", "tenant_id", "metric"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.Text)
    metric: Mapped[str] = mapped_column(sa.Text)
    limit: Mapped[Decimal | None] = mapped_column(Quantity)
    included: Mapped[Decimal | None] = mapped_column(Quantity)
    enforcement: Mapped[str | None] = mapped_column(sa.Text)
    effective_from: Mapped[dt.date | None] = mapped_column(sa.Date)
    effective_to: Mapped[dt.date | None] = mapped_column(sa.Date)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class UsageDaily(Base):
    """One row per tenant, metric and UTC usage day: the aggregate of accepted events."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        sa.CheckConstraint("quantity_sum >= 0", name="quantity_sum_non_negative"),
        sa.CheckConstraint("event_count > 0", name="event_count_positive"),
        sa.CheckConstraint("quantity_max >= 0", name="quantity_max_non_negative"),
        sa.CheckConstraint("first_occurred_at <= last_occurred_at", name="occurred_range_ordered"),
        sa.Index("ix_usage_daily_usage_date", "usage_date"),
    )

    tenant_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    metric: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    usage_date: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    quantity_sum: Mapped[Decimal] = mapped_column(Quantity)
    event_count: Mapped[int] = mapped_column(sa.BigInteger)
    quantity_max: Mapped[Decimal] = mapped_column(EventQuantity)
    first_occurred_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp)
    last_occurred_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class QuotaUsage(Base):
    """Precomputed per tenant and metric for the current period: what a quota check reads."""

    __tablename__ = "quota_usage"
    __table_args__ = (
        sa.CheckConstraint(AGGREGATIONS_SQL, name="aggregation_known"),
        sa.CheckConstraint("enforcement IN ('hard', 'soft')", name="enforcement_known"),
        sa.CheckConstraint("source IN ('plan', 'override')", name="source_known"),
        sa.CheckConstraint("used >= 0", name="used_non_negative"),
        sa.CheckConstraint("period_end > period_start", name="period_ordered"),
    )

    tenant_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    metric: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    plan_code: Mapped[str] = mapped_column(sa.Text)
    period_start: Mapped[dt.date] = mapped_column(sa.Date)
    period_end: Mapped[dt.date] = mapped_column(sa.Date)
    aggregation: Mapped[str] = mapped_column(sa.Text)
    included: Mapped[Decimal] = mapped_column(Quantity)
    limit: Mapped[Decimal | None] = mapped_column(Quantity)
    enforcement: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[str] = mapped_column(sa.Text)
    used: Mapped[Decimal] = mapped_column(Quantity)
    as_of: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)
    refreshed_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class IngestInbox(Base):
    """Events pushed over HTTP, durable on 202, drained into the lake by the ingest flow.

    (tenant_id, event_id) is unique: a push of a key already pushed is a duplicate or a
    conflicting duplicate at request time. `drained_run_id` is set in the same
    transaction that commits the run that wrote the event to the lake (exactly once).
    """

    __tablename__ = "ingest_inbox"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "event_id", name="uq_ingest_inbox_key"),
        sa.CheckConstraint("quantity >= 0", name="quantity_non_negative"),
        sa.Index(
            "ix_ingest_inbox_undrained", "id", postgresql_where=sa.text("drained_run_id IS NULL")
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.Text)
    event_id: Mapped[str] = mapped_column(sa.Text)
    metric: Mapped[str] = mapped_column(sa.Text)
    quantity: Mapped[Decimal] = mapped_column(EventQuantity)
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp)
    properties: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    received_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    drained_run_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("job_runs.id", ondelete="RESTRICT")
    )


class JobRun(Base):
    """One run of a job (ingest, backfill, invoice run): parameters, outcome and counts."""

    __tablename__ = "job_runs"
    __table_args__ = (
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status_known"),
        sa.Index("ix_job_runs_job_started", "job", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    job: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.Text)
    started_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)
    duration_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    parameters: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, server_default="{}")
    summary: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, server_default="{}")
    error: Mapped[str | None] = mapped_column(sa.Text)
    flow_run_id: Mapped[str | None] = mapped_column(sa.Text)


class IngestFile(Base):
    """The file ledger: a file's content (sha256) is ingested once."""

    __tablename__ = "ingest_files"
    __table_args__ = (
        sa.CheckConstraint("status IN ('ingested', 'quarantined')", name="status_known"),
        sa.CheckConstraint(
            "rows_read = rows_accepted + rows_duplicate + rows_rejected", name="rows_add_up"
        ),
    )

    sha256: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    path: Mapped[str] = mapped_column(sa.Text)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.Text)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    rows_read: Mapped[int] = mapped_column(sa.BigInteger)
    rows_accepted: Mapped[int] = mapped_column(sa.BigInteger)
    rows_duplicate: Mapped[int] = mapped_column(sa.BigInteger)
    rows_rejected: Mapped[int] = mapped_column(sa.BigInteger)
    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, sa.ForeignKey("job_runs.id"))
    ingested_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class LakeFile(Base):
    """The lake manifest: a Parquet file is part of the lake only once listed here.

    NOTE: lake files are written before the run's Postgres transaction commits; a file
    not listed here belongs to a run that crashed and is ignored (and later removed).
    """

    __tablename__ = "lake_files"
    __table_args__ = (
        sa.Index("ix_lake_files_usage_date", "usage_date"),
        sa.Index("ix_lake_files_unindexed", "path", postgresql_where=sa.text("NOT keys_indexed")),
    )

    path: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    usage_date: Mapped[dt.date] = mapped_column(sa.Date)
    row_count: Mapped[int] = mapped_column(sa.BigInteger)
    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, sa.ForeignKey("job_runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    # NOTE: false for files listed before 0008; the next ingest run indexes their keys
    keys_indexed: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())


class LandingFileStat(Base):
    """(size, mtime) of a landing path whose content the ledger knows: a run skips a path
    whose size and mtime still match without reading it."""

    __tablename__ = "landing_files"

    path: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    mtime_ns: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.Text, sa.ForeignKey("ingest_files.sha256"))


# The dedupe index: the hash of every (tenant_id, event_id) in the lake and the day of its
# lake files, written in the run's transaction with the manifest. NOTE: a Core table, with
# no primary key: two keys may share a hash (a match is a candidate, checked against the
# day's lake files: services/ingest/dedupe.py `KeyIndex`).
event_keys = sa.Table(
    "event_keys",
    Base.metadata,
    sa.Column("key_hash", sa.BigInteger, nullable=False),  # ingest/create_event_key_hash.sql
    sa.Column("usage_date", sa.Date, nullable=False),
    sa.Index("ix_event_keys_key_hash", "key_hash"),
)


class RetiredLakeFile(Base):
    """A lake file a compaction took out of the manifest (or merged before it was listed):
    moved to the trash after the commit (by the next run if a crash came between)."""

    __tablename__ = "lake_files_retired"

    path: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, sa.ForeignKey("job_runs.id"))


class RejectedRow(Base):
    """Quarantine: a rejected row (or a whole unreadable file) with its reason and raw bytes."""

    __tablename__ = "rejected_rows"
    __table_args__ = (
        sa.CheckConstraint(
            "reason IN ('invalid_event_id', 'invalid_tenant_id', 'invalid_metric', "
            "'invalid_quantity', 'negative_quantity', 'quantity_too_large', "
            "'invalid_timestamp', 'naive_timestamp', 'future_timestamp', 'missing_field', "
            "'malformed_row', 'unreadable_file', 'conflicting_duplicate')",
            name="reason_known",
        ),
        sa.Index("ix_rejected_rows_run", "run_id"),
        sa.Index("ix_rejected_rows_reason", "reason"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, sa.ForeignKey("job_runs.id"))
    source: Mapped[str] = mapped_column(sa.Text)  # file path, or "http" for the inbox
    file_sha256: Mapped[str | None] = mapped_column(sa.Text)
    line_no: Mapped[int | None] = mapped_column(sa.BigInteger)
    reason: Mapped[str] = mapped_column(sa.Text)
    detail: Mapped[str | None] = mapped_column(sa.Text)
    tenant_id: Mapped[str | None] = mapped_column(sa.Text)
    event_id: Mapped[str | None] = mapped_column(sa.Text)
    raw: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class Invoice(Base):
    """An invoice, adjustment or credit note of a tenant and period.

    At most one non-void invoice of kind `invoice` per tenant and period (a partial
    unique index); corrections name the closed invoice they correct (contract 5.2).
    """

    __tablename__ = "invoices"
    __table_args__ = (
        sa.CheckConstraint("status IN ('draft', 'closed', 'void')", name="status_known"),
        sa.CheckConstraint("period_end > period_start", name="period_ordered"),
        sa.CheckConstraint(
            "(kind = 'credit_note' AND total < 0) OR (kind <> 'credit_note' AND total >= 0)",
            name="total_signed_by_kind",
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        sa.CheckConstraint("kind IN ('invoice', 'adjustment', 'credit_note')", name="kind_known"),
        sa.CheckConstraint(
            "(kind = 'invoice') = (corrects_invoice_id IS NULL)",
            name="corrections_name_their_invoice",
        ),
        sa.CheckConstraint(
            "(status = 'draft' AND number IS NULL AND closed_at IS NULL)"
            " OR (status = 'closed' AND number IS NOT NULL AND closed_at IS NOT NULL)"
            " OR (status = 'void' AND voided_at IS NOT NULL)",
            name="status_fields",
        ),
        sa.Index(
            "uq_invoices_tenant_period_live",
            "tenant_id",
            "period_start",
            unique=True,
            postgresql_where=sa.text("status <> 'void' AND kind = 'invoice'"),
        ),
        sa.Index(
            "uq_invoices_one_draft_correction",
            "corrects_invoice_id",
            unique=True,
            postgresql_where=sa.text("status = 'draft'"),
        ),
        sa.Index("ix_invoices_period_status", "period_start", "status"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.Text)
    period_start: Mapped[dt.date] = mapped_column(sa.Date)
    period_end: Mapped[dt.date] = mapped_column(sa.Date)
    currency: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.Text, server_default="draft")
    number: Mapped[str | None] = mapped_column(sa.Text, unique=True)
    total: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)
    run_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, sa.ForeignKey("job_runs.id"))
    kind: Mapped[str] = mapped_column(sa.Text, server_default="invoice")
    corrects_invoice_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.ForeignKey("invoices.id"), index=True
    )

    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice",
        cascade="all, delete-orphan",
        order_by="InvoiceLine.line_no",
        primaryjoin="Invoice.id == foreign(InvoiceLine.invoice_id)",
    )


class InvoiceLine(Base):
    """A base_fee line per subscription (prorated), a usage line per metric, a
    commitment_true_up line per subscription below its minimum, a credit line per grant used
    at close (the only negative amounts)."""

    __tablename__ = "invoice_lines"
    __table_args__ = (
        sa.UniqueConstraint("invoice_id", "line_no", name="uq_invoice_lines_invoice_line_no"),
        sa.CheckConstraint(
            "kind IN ('base_fee', 'usage', 'commitment_true_up', 'credit')", name="kind_known"
        ),
        # NOTE: no sign check on amount: correction lines carry signed deltas (0004).
        sa.CheckConstraint(
            "(kind = 'usage') = (metric IS NOT NULL)", name="usage_lines_have_metric"
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    # NOTE (0012): invoice_id and subscription_id are references without declared foreign
    # keys: the lines' statement-level trigger checks them once per statement (the run
    # writes millions of lines; a key checks and locks per line), deleting invoices deletes
    # their lines, an invoiced subscription cannot be deleted. The migration says how.
    invoice_id: Mapped[int] = mapped_column(sa.BigInteger)
    line_no: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.Text)
    subscription_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    plan_code: Mapped[str] = mapped_column(sa.Text)
    metric: Mapped[str | None] = mapped_column(sa.Text)
    description: Mapped[str] = mapped_column(sa.Text)
    window_start: Mapped[dt.date] = mapped_column(sa.Date)
    window_end: Mapped[dt.date] = mapped_column(sa.Date)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    included: Mapped[Decimal] = mapped_column(Quantity, server_default="0")
    billable_quantity: Mapped[Decimal] = mapped_column(Quantity)
    pricing_model: Mapped[str | None] = mapped_column(sa.Text)
    amount: Mapped[Decimal] = mapped_column(Money)
    breakdown: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, server_default="{}")
    # NOTE (0004): the group a matrix usage line prices ({key: value}), null otherwise.
    group: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)

    invoice: Mapped[Invoice] = relationship(
        back_populates="lines", primaryjoin="Invoice.id == foreign(InvoiceLine.invoice_id)"
    )


class InvoiceNumberCounter(Base):
    """The last number given in one series (prefix) and UTC year: numbers are gapless.

    Closing increments the row in the closing transaction, so a rolled-back close gives
    its numbers back and concurrent closes queue on the row lock.
    """

    __tablename__ = "invoice_number_counters"
    __table_args__ = (sa.CheckConstraint("last_number >= 0", name="last_number_non_negative"),)

    series: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    year: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(sa.BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class ApiKey(Base):
    """An API key: only a hash is stored; `prefix` finds the row, the hash is compared."""

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.CheckConstraint(
            "scopes <@ ARRAY['billing.read', 'billing.write', 'usage.write']::text[]"
            " AND cardinality(scopes) > 0",
            name="scopes_known",
        ),
        # NOTE: a tenant's own key may push usage and read its billing, never change it.
        sa.CheckConstraint(
            "tenant_id IS NULL OR NOT ('billing.write' = ANY(scopes))", name="write_is_global"
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    prefix: Mapped[str] = mapped_column(sa.Text, unique=True)
    key_hash: Mapped[str] = mapped_column(sa.Text)
    scopes: Mapped[list[str]] = mapped_column(pg.ARRAY(sa.Text))
    tenant_id: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)
    expires_on: Mapped[dt.date | None] = mapped_column(sa.Date)  # exclusive, UTC day
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)


class AuditLog(Base):
    """One change made through the API or the key CLI: who, what, tenant, before and after.

    NOTE: append-only in the database (trigger `audit_log_append_only`, migration 0004):
    UPDATE, DELETE and TRUNCATE are refused. Rows are written in the change's transaction.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_at", "at"),
        sa.Index("ix_audit_log_tenant_id", "tenant_id", "at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    key_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    key_name: Mapped[str] = mapped_column(sa.Text)
    action: Mapped[str] = mapped_column(sa.Text)
    tenant_id: Mapped[str | None] = mapped_column(sa.Text)
    object_type: Mapped[str] = mapped_column(sa.Text)
    object_id: Mapped[str | None] = mapped_column(sa.Text)
    before: Mapped[Any | None] = mapped_column(pg.JSONB)
    after: Mapped[Any | None] = mapped_column(pg.JSONB)


class BillableMetric(Base):
    """A billable metric (contract 4a): immutable, refused UPDATE/DELETE by a trigger."""

    __tablename__ = "metrics"
    __table_args__ = (
        sa.CheckConstraint(f"code ~ '{METRIC_PATTERN}'", name="code_format"),
        sa.CheckConstraint(f"event_metric ~ '{METRIC_PATTERN}'", name="event_metric_format"),
        sa.CheckConstraint(AGGREGATIONS_SQL, name="aggregation_known"),
        sa.CheckConstraint(
            "value = 'quantity' OR value ~ '^properties\\.[A-Za-z_][A-Za-z0-9_]{0,63}$'",
            name="value_format",
        ),
        sa.CheckConstraint(
            "(aggregation = 'percentile') = (percentile IS NOT NULL)"
            " AND (percentile IS NULL OR (percentile > 0 AND percentile <= 100))",
            name="percentile_rule",
        ),
        sa.CheckConstraint(
            "(aggregation = 'time_weighted_sum') = (time_unit IS NOT NULL)"
            " AND (time_unit IS NULL OR time_unit IN ('hour', 'day'))",
            name="time_unit_rule",
        ),
        sa.CheckConstraint("cardinality(group_by) <= 3", name="group_by_size"),
    )

    code: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    event_metric: Mapped[str] = mapped_column(sa.Text)
    aggregation: Mapped[str] = mapped_column(sa.Text)
    value: Mapped[str] = mapped_column(sa.Text)
    percentile: Mapped[Decimal | None] = mapped_column(sa.Numeric(9, 6, asdecimal=True))
    time_unit: Mapped[str | None] = mapped_column(sa.Text)
    filters: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, server_default="{}")
    group_by: Mapped[list[str]] = mapped_column(pg.ARRAY(sa.Text), server_default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class MetricUsage(Base):
    """A billable metric's value per tenant, window and group (group_key '' = the total).

    A window is the calendar month or a subscription's days inside it; rows of a period are
    replaced by every ingest/backfill run that touched one of its days.
    """

    __tablename__ = "metric_usage"
    __table_args__ = (
        sa.CheckConstraint("value >= 0", name="value_non_negative"),
        sa.CheckConstraint(
            "window_start >= period_start AND window_end > window_start", name="window_ordered"
        ),
        sa.CheckConstraint("(group_key = '') = (group_values IS NULL)", name="total_row"),
        sa.Index("ix_metric_usage_metric_period", "metric_code", "period_start"),
        sa.Index("ix_metric_usage_tenant_window", "tenant_id", "window_start"),
    )

    metric_code: Mapped[str] = mapped_column(
        sa.ForeignKey("metrics.code", ondelete="RESTRICT"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    period_start: Mapped[dt.date] = mapped_column(sa.Date)
    window_start: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    window_end: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    group_key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    group_values: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    value: Mapped[Decimal] = mapped_column(Quantity)
    as_of: Mapped[dt.datetime] = mapped_column(UtcTimestamp)


# --- spend controls (contract 5b) ------------------------------------------------------


class CreditGrant(Base):
    """A prepaid credit grant: `remaining` falls (never below 0) as closes apply it.

    NOTE: closes lock grants FOR UPDATE in id order (services/credits.py), so two closes
    sharing a grant queue behind each other and the second sees what the first used.
    """

    __tablename__ = "credit_grants"
    __table_args__ = (
        sa.CheckConstraint(f"tenant_id ~ '{TENANT_ID_PATTERN}'", name="tenant_id_format"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
        sa.CheckConstraint(
            "expires_on IS NULL OR expires_on > effective_from", name="dates_ordered"
        ),
        sa.Index("ix_credit_grants_tenant_currency", "tenant_id", "currency"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.Text)
    currency: Mapped[str] = mapped_column(sa.Text)
    amount: Mapped[Decimal] = mapped_column(Money)
    remaining: Mapped[Decimal] = mapped_column(Money)
    effective_from: Mapped[dt.date] = mapped_column(sa.Date)
    expires_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    priority: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    note: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class CreditApplication(Base):
    """What one close took from one grant (at most once per grant and invoice)."""

    __tablename__ = "credit_applications"
    __table_args__ = (
        sa.UniqueConstraint("grant_id", "invoice_id", name="uq_credit_applications_grant_invoice"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.Index("ix_credit_applications_invoice", "invoice_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    grant_id: Mapped[int] = mapped_column(sa.ForeignKey("credit_grants.id", ondelete="RESTRICT"))
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("invoices.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    applied_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp)


class Alert(Base):
    """A tenant's alert: a metric's period-to-date total (absolute or % of its effective
    limit) or the period's spend reaching a threshold."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint(f"tenant_id ~ '{TENANT_ID_PATTERN}'", name="tenant_id_format"),
        sa.CheckConstraint(
            "kind IN ('usage_absolute', 'usage_percent', 'spend')", name="kind_known"
        ),
        sa.CheckConstraint("(kind = 'spend') = (metric IS NULL)", name="metric_for_usage"),
        sa.CheckConstraint("threshold > 0", name="threshold_positive"),
        sa.UniqueConstraint(
            "tenant_id",
            "kind",
            "metric",
            "threshold",
            name="uq_alerts_definition",
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.Text)
    metric: Mapped[str | None] = mapped_column(sa.Text)
    threshold: Mapped[Decimal] = mapped_column(Quantity)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class AlertTrigger(Base):
    """An alert that fired in a period: the primary key makes it fire once per period."""

    __tablename__ = "alert_triggers"

    alert_id: Mapped[int] = mapped_column(
        sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    triggered_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp)
    measure: Mapped[Decimal] = mapped_column(Quantity)


class SpendCap(Base):
    """A tenant's spend cap, in its plan's currency."""

    __tablename__ = "spend_caps"
    __table_args__ = (sa.CheckConstraint("amount >= 0", name="amount_non_negative"),)

    tenant_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())


class TenantSpend(Base):
    """The current period's spend of a tenant as of the last ingest or backfill run."""

    __tablename__ = "tenant_spend"
    __table_args__ = (sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),)

    tenant_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    period_start: Mapped[dt.date] = mapped_column(sa.Date)
    currency: Mapped[str] = mapped_column(sa.Text)
    amount: Mapped[Decimal] = mapped_column(Money)
    as_of: Mapped[dt.datetime] = mapped_column(UtcTimestamp)


class WebhookEndpoint(Base):
    """A registered receiver. The secret is kept as issued: signing needs the key itself.

    NOTE: deleted endpoints stay (deleted_at) so their delivery log stays readable.
    """

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        sa.CheckConstraint("url ~ '^https?://'", name="url_scheme"),
        sa.CheckConstraint("cardinality(events) > 0", name="events_not_empty"),
        # NOTE (0010): the secret is stored sealed (tallyflow/core/secrets.py), never plain
        sa.CheckConstraint("secret_ciphertext NOT LIKE 'whsec\\_%'", name="secret_sealed"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    url: Mapped[str] = mapped_column(sa.Text)
    events: Mapped[list[str]] = mapped_column(pg.ARRAY(sa.Text))
    # the signing secret sealed with TALLYFLOW_SECRET_KEY (a Fernet token)
    secret_ciphertext: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction that causes it.

    `id` is the `webhook-id` of every delivery of the event (the same on each retry).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        sa.CheckConstraint(
            "type IN ('usage.threshold_reached', 'spend.threshold_reached',"
            " 'invoice.closed', 'invoice.voided')",
            name="type_known",
        ),
    )

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    type: Mapped[str] = mapped_column(sa.Text)
    tenant_id: Mapped[str | None] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any]] = mapped_column(pg.JSONB)
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp)


class WebhookDelivery(Base):
    """One event to one endpoint: the delivery log (attempts, status, last error)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'cancelled')", name="status_known"
        ),
        sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        sa.Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
        ),
        sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(sa.Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcTimestamp)
    created_at: Mapped[dt.datetime] = mapped_column(UtcTimestamp, server_default=_now())
