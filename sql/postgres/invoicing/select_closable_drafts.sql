-- purpose: lock the drafts to close (by ids, or every draft of a period for :tenant_ids) in numbering order
SELECT id, kind
FROM invoices
WHERE status = 'draft'
  AND (CAST(:invoice_ids AS bigint[]) IS NULL OR id = ANY(CAST(:invoice_ids AS bigint[])))
  AND (CAST(:period_start AS date) IS NULL OR period_start = CAST(:period_start AS date))
  AND (CAST(:tenant_ids AS text[]) IS NULL OR tenant_id = ANY(CAST(:tenant_ids AS text[])))
ORDER BY tenant_id, id
FOR UPDATE
