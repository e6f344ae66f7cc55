-- purpose: empty the invoice staging table before the priced totals replace the placeholders
TRUNCATE invoice_stage
