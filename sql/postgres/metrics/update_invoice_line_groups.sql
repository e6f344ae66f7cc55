-- purpose: set the group of the run's draft lines that price a group (matrix), from their breakdown
UPDATE invoice_lines AS l
SET "group" = l.breakdown -> 'group'
FROM invoice_run_drafts AS d
WHERE l.invoice_id = d.invoice_id
  AND l."group" IS DISTINCT FROM (l.breakdown -> 'group')
