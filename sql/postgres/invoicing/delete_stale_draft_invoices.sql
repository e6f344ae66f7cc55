-- purpose: remove drafts of the period whose tenant no longer has a subscription in it (drafts were never issued)
DELETE FROM invoices AS i
WHERE i.period_start = CAST(:period_start AS date)
  AND i.status = 'draft'
  AND (CAST(:tenant_ids AS text[]) IS NULL OR i.tenant_id = ANY(CAST(:tenant_ids AS text[])))
  AND NOT EXISTS (SELECT 1 FROM invoice_stage AS st WHERE st.tenant_id = i.tenant_id)
