-- purpose: one tenant's calendar-month value of a metric: the total and every group
SELECT group_key, group_values, value, as_of
FROM metric_usage
WHERE metric_code = :code AND tenant_id = :tenant_id
  AND window_start = CAST(:period_start AS date) AND window_end = CAST(:period_end AS date)
ORDER BY group_key
