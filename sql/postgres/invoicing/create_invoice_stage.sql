-- purpose: temporary staging table for the invoices an invoice run computed (dropped at commit)
CREATE TEMPORARY TABLE invoice_stage (
    tenant_id text PRIMARY KEY,
    currency text NOT NULL,
    total numeric(24, 6) NOT NULL
) ON COMMIT DROP
