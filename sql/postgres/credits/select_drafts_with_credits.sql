-- purpose: of the drafts being closed, the invoices and adjustments whose tenant holds a grant with credit left in their currency, in id order
SELECT i.id
FROM invoices AS i
WHERE i.id = ANY(CAST(:invoice_ids AS bigint[]))
  AND i.status = 'draft' AND i.kind IN ('invoice', 'adjustment') AND i.total > 0
  AND EXISTS (
      SELECT 1 FROM credit_grants AS g
      WHERE g.tenant_id = i.tenant_id AND g.currency = i.currency AND g.remaining > 0
  )
ORDER BY i.id
