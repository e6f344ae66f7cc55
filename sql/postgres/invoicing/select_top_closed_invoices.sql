-- purpose: the largest closed invoices of a period (the demo's summary)
SELECT tenant_id, currency, total
FROM invoices
WHERE period_start = :period_start AND status = 'closed'
ORDER BY total DESC, tenant_id
LIMIT :limit
