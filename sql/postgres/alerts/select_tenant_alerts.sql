-- purpose: a tenant's alerts with when each fired in the period starting :period_start
SELECT a.id, a.kind, a.metric, a.threshold, t.triggered_at
FROM alerts AS a
LEFT JOIN alert_triggers AS t ON t.alert_id = a.id AND t.period_start = CAST(:period_start AS date)
WHERE a.tenant_id = :tenant_id
ORDER BY a.id
