-- purpose: drop every line of one draft (before its lines are written again)
DELETE FROM invoice_lines WHERE invoice_id = :invoice_id
