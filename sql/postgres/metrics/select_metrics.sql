-- purpose: billable metric definitions (all, or the given codes), by code
SELECT code, name, event_metric, aggregation, value, percentile, time_unit, filters, group_by,
       created_at
FROM metrics
WHERE CAST(:codes AS text[]) IS NULL OR code = ANY(CAST(:codes AS text[]))
ORDER BY code
