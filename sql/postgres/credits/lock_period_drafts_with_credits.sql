-- purpose: lock the drafts of a period (all tenants, or :tenant_ids) whose tenant holds a grant in the invoice's currency, in id order
SELECT i.id
FROM invoices AS i
WHERE i.status = 'draft' AND i.period_start = CAST(:period_start AS date) AND i.total > 0
  AND (CAST(:tenant_ids AS text[]) IS NULL OR i.tenant_id = ANY(CAST(:tenant_ids AS text[])))
  AND EXISTS (
      SELECT 1 FROM credit_grants AS g
      WHERE g.tenant_id = i.tenant_id AND g.currency = i.currency AND g.remaining > 0
  )
ORDER BY i.id
FOR UPDATE OF i
