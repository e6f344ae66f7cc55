-- purpose: a transaction-scoped staging table for recomputed usage_daily rows
CREATE TEMP TABLE usage_daily_stage (
    tenant_id text NOT NULL,
    metric text NOT NULL,
    usage_date date NOT NULL,
    quantity_sum_micros numeric NOT NULL,
    event_count bigint NOT NULL,
    quantity_max_micros numeric NOT NULL,
    first_occurred_at timestamptz NOT NULL,
    last_occurred_at timestamptz NOT NULL
) ON COMMIT DROP
