-- purpose: delete drafts by id (never issued; closed and void ones are refused by the status filter and the triggers)
DELETE FROM invoices
WHERE id = ANY(CAST(:invoice_ids AS bigint[]))
  AND status = 'draft'
