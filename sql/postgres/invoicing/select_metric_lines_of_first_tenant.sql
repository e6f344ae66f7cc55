-- purpose: the demo's sample of billable-metric lines: the first tenant with a line of :metric_codes[1]
SELECT i.tenant_id, i.currency, l.metric, l."group" ->> 'model' AS grp, l.quantity, l.amount
FROM invoice_lines AS l
JOIN invoices AS i ON i.id = l.invoice_id
WHERE i.period_start = :period_start
  AND i.status = 'closed'
  AND l.metric = ANY(CAST(:metric_codes AS text[]))
  AND i.tenant_id = (
      SELECT min(i2.tenant_id)
      FROM invoices AS i2
      JOIN invoice_lines AS l2 ON l2.invoice_id = i2.id
      WHERE i2.period_start = :period_start AND l2.metric = (CAST(:metric_codes AS text[]))[1]
  )
ORDER BY l.metric, l.amount DESC
LIMIT :limit
