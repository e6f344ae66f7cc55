-- purpose: write staged day aggregates into usage_daily; unchanged rows keep their updated_at
INSERT INTO usage_daily AS d (
    tenant_id, metric, usage_date, quantity_sum, event_count, quantity_max,
    first_occurred_at, last_occurred_at, updated_at
)
SELECT tenant_id, metric, usage_date,
       quantity_sum_micros * 0.000001,  -- NOTE: multiplication is exact in numeric
       event_count,
       quantity_max_micros * 0.000001,
       first_occurred_at, last_occurred_at, now()
FROM usage_daily_stage
ON CONFLICT (tenant_id, metric, usage_date) DO UPDATE SET
    quantity_sum = EXCLUDED.quantity_sum,
    event_count = EXCLUDED.event_count,
    quantity_max = EXCLUDED.quantity_max,
    first_occurred_at = EXCLUDED.first_occurred_at,
    last_occurred_at = EXCLUDED.last_occurred_at,
    updated_at = EXCLUDED.updated_at
WHERE (d.quantity_sum, d.event_count, d.quantity_max, d.first_occurred_at, d.last_occurred_at)
      IS DISTINCT FROM
      (EXCLUDED.quantity_sum, EXCLUDED.event_count, EXCLUDED.quantity_max,
       EXCLUDED.first_occurred_at, EXCLUDED.last_occurred_at)
