-- purpose: of the drafts being closed, the invoices and adjustments whose tenant holds a grant with credit left in their currency, with their highest line number and first line's plan, in id order
SELECT i.id, i.tenant_id, i.currency, i.period_start, i.total,
       COALESCE(l.line_no, 0) AS line_no, COALESCE(l.plan_code, '') AS plan_code
FROM invoices AS i
LEFT JOIN LATERAL (
    SELECT MAX(x.line_no) AS line_no,
           (ARRAY_AGG(x.plan_code ORDER BY x.line_no))[1] AS plan_code
    FROM invoice_lines AS x WHERE x.invoice_id = i.id
) AS l ON true
WHERE i.id = ANY(CAST(:invoice_ids AS bigint[]))
  AND i.status = 'draft' AND i.kind IN ('invoice', 'adjustment') AND i.total > 0
  AND EXISTS (
      SELECT 1 FROM credit_grants AS g
      WHERE g.tenant_id = i.tenant_id AND g.currency = i.currency AND g.remaining > 0
  )
ORDER BY i.id
