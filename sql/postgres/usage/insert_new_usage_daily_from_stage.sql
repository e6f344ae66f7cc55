-- purpose: add the staged day aggregates that usage_daily does not have yet
-- NOTE: a plain insert of the missing keys (after the update of the present ones) is about
-- 30% cheaper than INSERT ... ON CONFLICT DO UPDATE; usage runs hold the usage lock, so no
-- other writer can add a key in between.
INSERT INTO usage_daily (
    tenant_id, metric, usage_date, quantity_sum, event_count, quantity_max,
    first_occurred_at, last_occurred_at, updated_at
)
SELECT s.tenant_id, s.metric, s.usage_date,
       s.quantity_sum_micros * 0.000001,  -- NOTE: multiplication is exact in numeric
       s.event_count,
       s.quantity_max_micros * 0.000001,
       s.first_occurred_at, s.last_occurred_at, now()
FROM usage_daily_stage AS s
WHERE NOT EXISTS (
    SELECT 1 FROM usage_daily AS d
    WHERE d.tenant_id = s.tenant_id AND d.metric = s.metric AND d.usage_date = s.usage_date
)
