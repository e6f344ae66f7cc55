-- purpose: the non-void invoice of kind invoice (draft or closed) of each tenant in the period, if any
SELECT i.id, i.tenant_id, i.status, i.currency
FROM invoices AS i
WHERE i.period_start = CAST(:period_start AS date)
  AND i.status <> 'void'
  AND i.kind = 'invoice'
  AND (CAST(:tenant_ids AS text[]) IS NULL OR i.tenant_id = ANY(CAST(:tenant_ids AS text[])))
