-- purpose: the non-void invoice (draft or closed) of each tenant in the period, if any
SELECT i.id, i.tenant_id, i.status
FROM invoices AS i
WHERE i.period_start = CAST(:period_start AS date)
  AND i.status <> 'void'
  AND (CAST(:tenant_ids AS text[]) IS NULL OR i.tenant_id = ANY(CAST(:tenant_ids AS text[])))
