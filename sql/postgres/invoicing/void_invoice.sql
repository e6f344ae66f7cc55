-- purpose: void one draft or closed invoice (a void invoice stays as it is)
UPDATE invoices
SET status = 'void', voided_at = CAST(:now AS timestamptz), updated_at = CAST(:now AS timestamptz)
WHERE id = :invoice_id AND status IN ('draft', 'closed')
RETURNING id
