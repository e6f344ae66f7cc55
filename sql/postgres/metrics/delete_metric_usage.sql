-- purpose: drop the rows of the given metrics and periods (all tenants or :tenant_ids) before they are rewritten
DELETE FROM metric_usage
WHERE metric_code = ANY(CAST(:codes AS text[]))
  AND period_start = ANY(CAST(:period_starts AS date[]))
  AND (CAST(:tenant_ids AS text[]) IS NULL OR tenant_id = ANY(CAST(:tenant_ids AS text[])))
