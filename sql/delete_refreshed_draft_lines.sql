-- purpose: drop the old lines of the drafts being refreshed (replaced in the same transaction)
DELETE FROM invoice_lines AS l
USING invoice_upserted AS u
WHERE l.invoice_id = u.invoice_id
