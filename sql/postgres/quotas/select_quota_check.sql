-- purpose: the quota check as one indexed read: the tenant's active subscription today and its quota row for :metric
SELECT s.id AS active_subscription_id, q.tenant_id, q.metric, q.subscription_id, q.plan_code,
       q.period_start, q.period_end, q.aggregation, q.included, q."limit", q.enforcement,
       q.source, q.used, q.as_of
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT id FROM subscriptions
    WHERE tenant_id = :tenant_id AND starts_on <= CAST(:today AS date)
      AND (ends_on IS NULL OR ends_on > CAST(:today AS date))
    ORDER BY starts_on DESC
    LIMIT 1
) s ON true
LEFT JOIN quota_usage q ON q.tenant_id = :tenant_id AND q.metric = :metric
