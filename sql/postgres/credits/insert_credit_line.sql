-- purpose: a negative credit line at the end of a draft invoice being closed
INSERT INTO invoice_lines (invoice_id, line_no, kind, subscription_id, plan_code, metric, description,
                           window_start, window_end, quantity, included, billable_quantity,
                           pricing_model, amount, breakdown)
SELECT i.id,
       COALESCE((SELECT MAX(l.line_no) FROM invoice_lines AS l WHERE l.invoice_id = i.id), 0) + 1,
       'credit', NULL,
       COALESCE((SELECT l.plan_code FROM invoice_lines AS l WHERE l.invoice_id = i.id
                 ORDER BY l.line_no LIMIT 1), ''),
       NULL, :description, i.period_start, i.period_end, 1, 0, 1, NULL, -CAST(:amount AS numeric),
       CAST(:breakdown AS jsonb)
FROM invoices AS i
WHERE i.id = :invoice_id AND i.status = 'draft'
