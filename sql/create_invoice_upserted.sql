-- purpose: temporary table of the drafts an invoice run created or refreshed (dropped at commit)
CREATE TEMPORARY TABLE invoice_upserted (
    invoice_id bigint PRIMARY KEY,
    tenant_id text NOT NULL UNIQUE
) ON COMMIT DROP
