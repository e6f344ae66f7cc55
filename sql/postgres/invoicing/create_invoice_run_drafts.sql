-- purpose: temporary table of this run's drafts (locked, one per priced tenant), dropped at commit
CREATE TEMPORARY TABLE invoice_run_drafts (
    invoice_id bigint PRIMARY KEY,
    tenant_id text NOT NULL UNIQUE,
    is_new boolean NOT NULL DEFAULT false,
    changed boolean NOT NULL DEFAULT false
) ON COMMIT DROP
