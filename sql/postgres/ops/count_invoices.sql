-- purpose: how many invoices exist (a downgrade is refused when any does)
SELECT count(*) FROM invoices
