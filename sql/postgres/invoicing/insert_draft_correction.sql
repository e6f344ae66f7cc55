-- purpose: open a draft correction (adjustment or credit note) of a closed invoice, same tenant and period
INSERT INTO invoices (tenant_id, period_start, period_end, currency, status, total, run_id, kind,
                      corrects_invoice_id)
SELECT i.tenant_id, i.period_start, i.period_end, CAST(:currency AS text), 'draft',
       CAST(:total AS numeric), CAST(:run_id AS uuid), CAST(:kind AS text), i.id
FROM invoices AS i
WHERE i.id = :corrects_invoice_id
  AND i.status = 'closed'
RETURNING id
