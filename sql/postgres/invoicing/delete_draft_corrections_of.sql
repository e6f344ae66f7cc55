-- purpose: drop the draft corrections of an invoice being voided (drafts were never issued)
DELETE FROM invoices
WHERE corrects_invoice_id = :invoice_id
  AND status = 'draft'
