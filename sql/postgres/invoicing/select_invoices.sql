-- purpose: invoices by ids or by tenant, with optional period and status filters
SELECT i.id, i.tenant_id, i.period_start, i.period_end, i.currency, i.status, i.number,
       i.total, i.created_at, i.updated_at, i.closed_at, i.voided_at, i.run_id
FROM invoices AS i
WHERE (CAST(:invoice_ids AS bigint[]) IS NULL OR i.id = ANY(CAST(:invoice_ids AS bigint[])))
  AND (CAST(:tenant_id AS text) IS NULL OR i.tenant_id = CAST(:tenant_id AS text))
  AND (CAST(:period_start AS date) IS NULL OR i.period_start = CAST(:period_start AS date))
  AND (CAST(:status AS text) IS NULL OR i.status = CAST(:status AS text))
ORDER BY i.period_start DESC, i.id DESC
