-- purpose: set the group of the period's draft lines that price a group (matrix lines and their correction deltas), from their breakdown
UPDATE invoice_lines AS l
SET "group" = COALESCE(l.breakdown -> 'group', l.breakdown -> 'rerated_breakdown' -> 'group')
FROM invoices AS i
WHERE l.invoice_id = i.id
  AND i.status = 'draft'
  AND i.period_start = :period_start
  AND l."group" IS DISTINCT FROM
      COALESCE(l.breakdown -> 'group', l.breakdown -> 'rerated_breakdown' -> 'group')
