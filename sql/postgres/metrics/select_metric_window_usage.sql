-- purpose: metric values (totals and groups) of every subscription window of a period, for the invoice run
-- NOTE: group_key, not group_values: the same few groups recur in every window, so the
-- reader parses each group's text once; no ORDER BY (the pricing orders a window's groups).
SELECT u.tenant_id, u.metric_code, u.window_start, u.window_end, u.group_key, u.value
FROM metric_usage u
WHERE u.period_start = CAST(:period_start AS date)
  AND (CAST(:tenant_ids AS text[]) IS NULL OR u.tenant_id = ANY(CAST(:tenant_ids AS text[])))
