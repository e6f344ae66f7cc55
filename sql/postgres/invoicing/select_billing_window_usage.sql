-- purpose: usage totals per subscription window and metric (each day goes to the subscription active that day)
WITH windows AS (
    SELECT s.id AS subscription_id, s.tenant_id,
           GREATEST(s.starts_on, CAST(:period_start AS date)) AS window_start,
           LEAST(COALESCE(s.ends_on, CAST(:period_end AS date)), CAST(:period_end AS date))
               AS window_end
    FROM subscriptions AS s
    WHERE s.starts_on < CAST(:period_end AS date)
      AND (s.ends_on IS NULL OR s.ends_on > CAST(:period_start AS date))
      AND (CAST(:tenant_ids AS text[]) IS NULL OR s.tenant_id = ANY(CAST(:tenant_ids AS text[])))
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
