-- purpose: bulk-load recomputed usage_daily rows into the staging table (psycopg COPY, CSV)
COPY usage_daily_stage (
    tenant_id, metric, usage_date, quantity_sum_micros, event_count, quantity_max_micros,
    first_occurred_at, last_occurred_at
)
FROM STDIN (FORMAT csv)
