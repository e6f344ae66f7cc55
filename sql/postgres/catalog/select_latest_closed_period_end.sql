-- purpose: the end of the tenant's latest period with a closed invoice (a subscription may not start before it)
SELECT max(period_end) AS period_end
FROM invoices
WHERE tenant_id = :tenant_id AND status = 'closed'
