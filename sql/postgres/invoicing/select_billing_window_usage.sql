-- purpose: usage totals per subscription window and metric (each day goes to the subscription active that day)
WITH windows AS (
    -- the rule is the function subscription_windows (migration 0010), inlined by Postgres
    SELECT subscription_id, tenant_id, window_start, window_end
    FROM subscription_windows(CAST(:period_start AS date), CAST(:period_end AS date),
                              CAST(:tenant_ids AS text[]))
)
SELECT w.subscription_id, u.metric,
       SUM(u.quantity_sum) AS quantity_sum,
       SUM(u.event_count) AS event_count,
       MAX(u.quantity_max) AS quantity_max
FROM windows AS w
JOIN usage_daily AS u
  ON u.tenant_id = w.tenant_id
 AND u.usage_date >= w.window_start
 AND u.usage_date < w.window_end
WHERE u.usage_date >= CAST(:period_start AS date)
  AND u.usage_date < CAST(:period_end AS date)
GROUP BY w.subscription_id, u.metric
