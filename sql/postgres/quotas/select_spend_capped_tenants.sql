-- purpose: tenants (all, or :tenant_ids) whose spend in the period starting :period_start, as of the last run, is at or above their cap
SELECT c.tenant_id
FROM spend_caps AS c
JOIN tenant_spend AS s ON s.tenant_id = c.tenant_id
WHERE s.period_start = CAST(:period_start AS date) AND s.amount >= c.amount
  AND (CAST(:tenant_ids AS text[]) IS NULL OR c.tenant_id = ANY(CAST(:tenant_ids AS text[])))
