-- purpose: tenants with usage in the period but no subscription in it (usage nobody is billed for)
SELECT u.tenant_id, count(DISTINCT u.metric) AS metrics, count(*) AS usage_days,
       SUM(u.event_count) AS events
FROM usage_daily AS u
WHERE u.usage_date >= CAST(:period_start AS date)
  AND u.usage_date < CAST(:period_end AS date)
  AND (CAST(:tenant_ids AS text[]) IS NULL OR u.tenant_id = ANY(CAST(:tenant_ids AS text[])))
  -- NOTE: "no subscription in the period" = no window in it (subscription_windows,
  -- migration 0010), looked up per tenant of u (an index scan per tenant, as before).
  AND NOT EXISTS (
      SELECT 1
      FROM subscription_windows(CAST(:period_start AS date), CAST(:period_end AS date)) AS w
      WHERE w.tenant_id = u.tenant_id
  )
GROUP BY u.tenant_id
ORDER BY events DESC, u.tenant_id
