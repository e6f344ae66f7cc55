-- purpose: metric values (totals and groups) of every subscription window of a period, for the invoice run
SELECT u.tenant_id, u.metric_code, u.window_start, u.window_end, u.group_key, u.group_values,
       u.value
FROM metric_usage u
WHERE u.period_start = CAST(:period_start AS date)
  AND (CAST(:tenant_ids AS text[]) IS NULL OR u.tenant_id = ANY(CAST(:tenant_ids AS text[])))
ORDER BY u.tenant_id, u.metric_code, u.window_start, u.group_key
