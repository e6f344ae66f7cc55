-- purpose: refresh the head of a draft correction (its kind follows the sign of its total)
UPDATE invoices
SET kind = CAST(:kind AS text),
    total = CAST(:total AS numeric),
    run_id = CAST(:run_id AS uuid),
    updated_at = now()
WHERE id = :invoice_id
  AND status = 'draft'
