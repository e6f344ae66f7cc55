-- purpose: what applying credits needs of one invoice
SELECT id, tenant_id, currency, period_start, period_end, total, status
FROM invoices
WHERE id = :invoice_id
