-- purpose: lock the draft corrections of the given closed invoices (at most one each)
SELECT id, corrects_invoice_id, kind, currency, total
FROM invoices
WHERE status = 'draft'
  AND corrects_invoice_id = ANY(CAST(:invoice_ids AS bigint[]))
ORDER BY id
FOR UPDATE
