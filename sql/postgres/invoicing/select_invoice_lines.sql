-- purpose: the lines of the given invoices in line order
SELECT l.invoice_id, l.line_no, l.kind, l.subscription_id, l.plan_code, l.metric, l.description,
       l.window_start, l.window_end, l.quantity, l.included, l.billable_quantity,
       l.pricing_model, l.amount, l.breakdown, l."group"
FROM invoice_lines AS l
WHERE l.invoice_id = ANY(CAST(:invoice_ids AS bigint[]))
ORDER BY l.invoice_id, l.line_no
