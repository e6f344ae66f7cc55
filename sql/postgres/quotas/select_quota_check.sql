-- purpose: the quota check as one indexed read: the tenant's active subscription today, its quota row for :metric, and whether its spend as of the last run (period starting :period_start) is at or above its spend cap
SELECT s.id AS active_subscription_id, q.tenant_id, q.metric, q.subscription_id, q.plan_code,
       q.period_start, q.period_end, q.aggregation, q.included, q."limit", q.enforcement,
       q.source, q.used, q.as_of,
       EXISTS (
           SELECT 1 FROM spend_caps AS c
           JOIN tenant_spend AS t ON t.tenant_id = c.tenant_id
           WHERE c.tenant_id = :tenant_id AND t.period_start = CAST(:period_start AS date)
             AND t.amount >= c.amount
       ) AS spend_capped
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT id FROM subscriptions
    WHERE tenant_id = :tenant_id AND starts_on <= CAST(:today AS date)
      AND (ends_on IS NULL OR ends_on > CAST(:today AS date))
    ORDER BY starts_on DESC
    LIMIT 1
) s ON true
LEFT JOIN quota_usage q ON q.tenant_id = :tenant_id AND q.metric = :metric
