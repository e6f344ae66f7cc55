-- purpose: lock the period's existing drafts of the staged tenants and add them to the run (closed ones never)
INSERT INTO invoice_run_drafts (invoice_id, tenant_id)
SELECT i.id, i.tenant_id
FROM invoices AS i
JOIN invoice_stage AS st ON st.tenant_id = i.tenant_id
WHERE i.period_start = CAST(:period_start AS date)
  AND i.status = 'draft'
ORDER BY i.id
FOR UPDATE OF i
ON CONFLICT (invoice_id) DO NOTHING
