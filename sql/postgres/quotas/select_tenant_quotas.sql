-- purpose: a tenant's effective quotas (quota_usage rows of its subscription active on :today)
SELECT q.tenant_id, q.metric, q.subscription_id, q.plan_code, q.period_start, q.period_end,
       q.aggregation, q.included, q."limit", q.enforcement, q.source, q.used, q.as_of
FROM quota_usage q
WHERE q.tenant_id = :tenant_id
  AND EXISTS (
      SELECT 1 FROM subscriptions s
      WHERE s.tenant_id = :tenant_id AND s.starts_on <= CAST(:today AS date)
        AND (s.ends_on IS NULL OR s.ends_on > CAST(:today AS date))
  )
ORDER BY q.metric
