"""One definition of a subscription's window inside a period (issue 10 item 2)

Revision ID: 0010_subscription_windows
Revises: 0009_spend_secrets

- subscription_windows(period_start, period_end, tenant_ids DEFAULT NULL): the part
  [window_start, window_end) of every subscription (starts_on inclusive, ends_on exclusive,
  null = open) inside the period [period_start, period_end), all tenants or `tenant_ids`;
  empty windows are not returned. Every SQL statement that needs a window calls it (the
  invoice run's reads, the quota refresh, the metric windows, unbilled usage); its Python
  twin `services.proration.subscription_window` is held equal to it by
  tests/services/test_subscription_window_sql.py.
- LANGUAGE sql, STABLE, one SELECT, not strict, no SECURITY DEFINER, no SET: the planner
  inlines it into the calling statement (a scan of `subscriptions` with the caller's
  filters, using ix_subscriptions_window / ix_subscriptions_tenant_starts), never a
  Function Scan. Keep it so: a change that stops the inlining is caught by the same test.
- Downgrade drops it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_subscription_windows"
down_revision: str | None = "0009_spend_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NOTE: the parameters are named through the function (subscription_windows.period_start)
# so no column of `subscriptions` can shadow them. `period_start < period_end` only matters
# for an empty or reversed period (none is ever asked for: billing periods are months): it
# keeps the rule "no empty window" true for every input, as the Python twin does. For a
# real period the other conditions already give exactly the non-empty windows, since the
# table refuses ends_on <= starts_on (ck_subscriptions_dates_ordered).
SUBSCRIPTION_WINDOWS_FUNCTION = """
CREATE FUNCTION subscription_windows(
    period_start date, period_end date, tenant_ids text[] DEFAULT NULL
) RETURNS TABLE (
    subscription_id bigint, tenant_id text, plan_id bigint, window_start date, window_end date
) LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.id, s.tenant_id, s.plan_id,
           GREATEST(s.starts_on, subscription_windows.period_start),
           LEAST(COALESCE(s.ends_on, subscription_windows.period_end),
                 subscription_windows.period_end)
    FROM subscriptions AS s
    WHERE s.starts_on < subscription_windows.period_end
      AND (s.ends_on IS NULL OR s.ends_on > subscription_windows.period_start)
      AND subscription_windows.period_start < subscription_windows.period_end
      AND (subscription_windows.tenant_ids IS NULL
           OR s.tenant_id = ANY(subscription_windows.tenant_ids))
$$
"""

SUBSCRIPTION_WINDOWS_COMMENT = (
    "COMMENT ON FUNCTION subscription_windows(date, date, text[]) IS"
    " 'The part [window_start, window_end) of each subscription inside the period"
    " [period_start, period_end) (all tenants, or tenant_ids); empty windows excluded."
    " Python twin: services.proration.subscription_window. Keep it one inlinable SELECT.'"
)


def upgrade() -> None:
    op.execute(SUBSCRIPTION_WINDOWS_FUNCTION)
    op.execute(SUBSCRIPTION_WINDOWS_COMMENT)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS subscription_windows(date, date, text[])")
