-- purpose: create or refresh the staged drafts; closed invoices are left alone (ON CONFLICT ... WHERE draft)
WITH upserted AS (
    INSERT INTO invoices AS i (tenant_id, period_start, period_end, currency, status, total, run_id)
    SELECT st.tenant_id, CAST(:period_start AS date), CAST(:period_end AS date), st.currency,
           'draft', st.total, CAST(:run_id AS uuid)
    FROM invoice_stage AS st
    ORDER BY st.tenant_id
    ON CONFLICT (tenant_id, period_start) WHERE status <> 'void'
    DO UPDATE SET currency = EXCLUDED.currency,
                  total = EXCLUDED.total,
                  run_id = EXCLUDED.run_id,
                  updated_at = now()
    WHERE i.status = 'draft'
    RETURNING i.id, i.tenant_id
)
INSERT INTO invoice_upserted (invoice_id, tenant_id)
SELECT id, tenant_id FROM upserted
