"""Billable metrics (contract section 4a)

Revision ID: 0006_billable_metrics
Revises: 0005_invoicing_depth

- `metrics`: billable metric definitions, immutable (a trigger refuses UPDATE and DELETE:
  a new definition is a new code, so what an invoice was computed from never changes).
- `metric_usage`: a metric's value per tenant, window and group, precomputed by every ingest
  and backfill run for the periods it touched. A window is either the calendar month or a
  subscription's days inside it; `group_key` is '' for the metric's total, else the
  canonical JSON text of the group's values (also kept as JSONB in `group_values`).
- `invoice_lines.group`: the group a usage line prices (null for ungrouped lines).
- plan_quotas / quota_usage accept the new aggregations; plan_quotas the `matrix` model.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0006_billable_metrics"
down_revision: str | None = "0005_invoicing_depth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METRIC_RE = r"^[a-z][a-z0-9_.]{0,63}$"
ALL_AGGREGATIONS = (
    "aggregation IN ('sum', 'count', 'max', 'unique_count', 'latest', 'time_weighted_sum',"
    " 'percentile')"
)
OLD_AGGREGATIONS = "aggregation IN ('sum', 'count', 'max')"
ALL_PRICING = "pricing_model IN ('per_unit', 'graduated', 'volume', 'package', 'matrix')"
OLD_PRICING = "pricing_model IN ('per_unit', 'graduated', 'volume', 'package')"

IMMUTABLE_FUNCTION = """
CREATE FUNCTION metrics_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'metric % is immutable: define a new code instead', OLD.code
        USING ERRCODE = 'object_not_in_prerequisite_state';
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "metrics",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("event_metric", sa.Text(), nullable=False),
        sa.Column("aggregation", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("percentile", sa.Numeric(9, 6), nullable=True),
        sa.Column("time_unit", sa.Text(), nullable=True),
        sa.Column("filters", pg.JSONB(), server_default="{}", nullable=False),
        sa.Column("group_by", pg.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(f"code ~ '{METRIC_RE}'", name=op.f("ck_metrics_code_format")),
        sa.CheckConstraint(
            f"event_metric ~ '{METRIC_RE}'", name=op.f("ck_metrics_event_metric_format")
        ),
        sa.CheckConstraint(ALL_AGGREGATIONS, name=op.f("ck_metrics_aggregation_known")),
        sa.CheckConstraint(
            "value = 'quantity' OR value ~ '^properties\\.[A-Za-z_][A-Za-z0-9_]{0,63}$'",
            name=op.f("ck_metrics_value_format"),
        ),
        sa.CheckConstraint(
            "(aggregation = 'percentile') = (percentile IS NOT NULL)"
            " AND (percentile IS NULL OR (percentile > 0 AND percentile <= 100))",
            name=op.f("ck_metrics_percentile_rule"),
        ),
        sa.CheckConstraint(
            "(aggregation = 'time_weighted_sum') = (time_unit IS NOT NULL)"
            " AND (time_unit IS NULL OR time_unit IN ('hour', 'day'))",
            name=op.f("ck_metrics_time_unit_rule"),
        ),
        sa.CheckConstraint("cardinality(group_by) <= 3", name=op.f("ck_metrics_group_by_size")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_metrics")),
    )
    op.execute(IMMUTABLE_FUNCTION)
    op.execute(
        "CREATE TRIGGER metrics_immutable BEFORE UPDATE OR DELETE ON metrics"
        " FOR EACH ROW EXECUTE FUNCTION metrics_refuse_change()"
    )
    op.create_table(
        "metric_usage",
        sa.Column("metric_code", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("group_values", pg.JSONB(), nullable=True),
        sa.Column("value", sa.Numeric(38, 6), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("value >= 0", name=op.f("ck_metric_usage_value_non_negative")),
        sa.CheckConstraint(
            "window_start >= period_start AND window_end > window_start",
            name=op.f("ck_metric_usage_window_ordered"),
        ),
        sa.CheckConstraint(
            "(group_key = '') = (group_values IS NULL)", name=op.f("ck_metric_usage_total_row")
        ),
        sa.ForeignKeyConstraint(
            ["metric_code"],
            ["metrics.code"],
            name=op.f("fk_metric_usage_metric_code_metrics"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "metric_code",
            "tenant_id",
            "window_start",
            "window_end",
            "group_key",
            name=op.f("pk_metric_usage"),
        ),
    )
    op.create_index(
        "ix_metric_usage_metric_period", "metric_usage", ["metric_code", "period_start"]
    )
    op.create_index("ix_metric_usage_tenant_window", "metric_usage", ["tenant_id", "window_start"])
    op.add_column("invoice_lines", sa.Column("group", pg.JSONB(), nullable=True))
    _replace_check("plan_quotas", "aggregation_known", ALL_AGGREGATIONS)
    _replace_check("quota_usage", "aggregation_known", ALL_AGGREGATIONS)
    _replace_check("plan_quotas", "pricing_model_known", ALL_PRICING)


def downgrade() -> None:
    _replace_check("plan_quotas", "pricing_model_known", OLD_PRICING)
    _replace_check("quota_usage", "aggregation_known", OLD_AGGREGATIONS)
    _replace_check("plan_quotas", "aggregation_known", OLD_AGGREGATIONS)
    op.drop_column("invoice_lines", "group")
    op.drop_index("ix_metric_usage_tenant_window", table_name="metric_usage")
    op.drop_index("ix_metric_usage_metric_period", table_name="metric_usage")
    op.drop_table("metric_usage")
    op.execute("DROP TRIGGER IF EXISTS metrics_immutable ON metrics")
    op.drop_table("metrics")
    op.execute("DROP FUNCTION IF EXISTS metrics_refuse_change()")


def _replace_check(table: str, name: str, condition: str) -> None:
    full = f"ck_{table}_{name}"
    op.drop_constraint(op.f(full), table, type_="check")
    op.create_check_constraint(op.f(full), table, condition)
