-- purpose: lower a draft's total by the credits applied to it at close
UPDATE invoices SET total = total - :credited
WHERE id = :invoice_id AND status = 'draft'
