-- purpose: record what a close took from a grant (unique per grant and invoice)
INSERT INTO credit_applications (grant_id, invoice_id, amount, applied_at)
VALUES (:grant_id, :invoice_id, :amount, :now)
