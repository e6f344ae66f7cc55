-- purpose: tenants with usage in the period but no subscription in it (usage nobody is billed for)
SELECT u.tenant_id, count(DISTINCT u.metric) AS metrics, count(*) AS usage_days,
       SUM(u.event_count) AS events
FROM usage_daily AS u
WHERE u.usage_date >= CAST(:period_start AS date)
  AND u.usage_date < CAST(:period_end AS date)
  AND (CAST(:tenant_ids AS text[]) IS NULL OR u.tenant_id = ANY(CAST(:tenant_ids AS text[])))
  AND NOT EXISTS (
      SELECT 1 FROM subscriptions AS s
      WHERE s.tenant_id = u.tenant_id
        AND s.starts_on < CAST(:period_end AS date)
        AND (s.ends_on IS NULL OR s.ends_on > CAST(:period_start AS date))
  )
GROUP BY u.tenant_id
ORDER BY events DESC, u.tenant_id
