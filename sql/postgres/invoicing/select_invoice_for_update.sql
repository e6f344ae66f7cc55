-- purpose: lock one invoice row and read its status before a lifecycle change
SELECT id, status FROM invoices WHERE id = :invoice_id FOR UPDATE
