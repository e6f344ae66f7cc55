-- purpose: rewrite usage_daily rows whose staged day aggregate differs; unchanged rows keep their updated_at
UPDATE usage_daily AS d SET
    quantity_sum = s.quantity_sum_micros * 0.000001,  -- NOTE: multiplication is exact in numeric
    event_count = s.event_count,
    quantity_max = s.quantity_max_micros * 0.000001,
    first_occurred_at = s.first_occurred_at,
    last_occurred_at = s.last_occurred_at,
    updated_at = now()
FROM usage_daily_stage AS s
WHERE s.tenant_id = d.tenant_id AND s.metric = d.metric AND s.usage_date = d.usage_date
  AND (d.quantity_sum, d.event_count, d.quantity_max, d.first_occurred_at, d.last_occurred_at)
      IS DISTINCT FROM
      (s.quantity_sum_micros * 0.000001, s.event_count, s.quantity_max_micros * 0.000001,
       s.first_occurred_at, s.last_occurred_at)
