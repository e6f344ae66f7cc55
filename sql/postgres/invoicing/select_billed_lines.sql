-- purpose: the lines billed so far for closed invoices: their own and their closed corrections', by original invoice
SELECT COALESCE(i.corrects_invoice_id, i.id) AS original_id, l.kind, l.subscription_id,
       l.plan_code, l.metric, l.description, l.window_start, l.window_end, l.quantity,
       l.included, l.billable_quantity, l.pricing_model, l.amount, l."group"
FROM invoices AS i
JOIN invoice_lines AS l ON l.invoice_id = i.id
WHERE i.status = 'closed'
  AND (i.id = ANY(CAST(:invoice_ids AS bigint[]))
       OR i.corrects_invoice_id = ANY(CAST(:invoice_ids AS bigint[])))
ORDER BY original_id, i.id, l.line_no
