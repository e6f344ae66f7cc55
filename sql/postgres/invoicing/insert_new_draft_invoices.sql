-- purpose: open a draft (total filled in later) for each staged tenant without a live invoice in the period
WITH created AS (
    INSERT INTO invoices (tenant_id, period_start, period_end, currency, status, total, run_id)
    SELECT st.tenant_id, CAST(:period_start AS date), CAST(:period_end AS date), st.currency,
           'draft', st.total, CAST(:run_id AS uuid)
    FROM invoice_stage AS st
    ORDER BY st.tenant_id
    ON CONFLICT (tenant_id, period_start) WHERE status <> 'void' DO NOTHING
    RETURNING id, tenant_id
)
INSERT INTO invoice_run_drafts (invoice_id, tenant_id, is_new, changed)
SELECT id, tenant_id, true, true FROM created
