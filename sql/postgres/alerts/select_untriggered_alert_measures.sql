-- purpose: alerts (all tenants, or :tenant_ids) not yet fired in the period, with their metric's quota row and period-to-date usage
SELECT a.id, a.tenant_id, a.kind, a.metric, a.threshold,
       q.used AS quota_used, q."limit" AS quota_limit, u.total AS usage_total
FROM alerts AS a
LEFT JOIN quota_usage AS q
       ON q.tenant_id = a.tenant_id AND q.metric = a.metric
      AND q.period_start = CAST(:period_start AS date)
LEFT JOIN LATERAL (
    SELECT SUM(d.quantity_sum) AS total
    FROM usage_daily AS d
    WHERE d.tenant_id = a.tenant_id AND d.metric = a.metric
      AND d.usage_date >= CAST(:period_start AS date) AND d.usage_date < CAST(:period_end AS date)
) AS u ON a.kind = 'usage_absolute'
WHERE (CAST(:tenant_ids AS text[]) IS NULL OR a.tenant_id = ANY(CAST(:tenant_ids AS text[])))
  AND NOT EXISTS (
      SELECT 1 FROM alert_triggers AS t
      WHERE t.alert_id = a.id AND t.period_start = CAST(:period_start AS date)
  )
ORDER BY a.id
