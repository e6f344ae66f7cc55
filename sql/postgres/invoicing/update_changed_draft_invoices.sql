-- purpose: refresh the heads of this run's drafts whose total, currency or lines changed
WITH staged AS (
    SELECT d.invoice_id, d.changed, st.currency, st.total
    FROM invoice_run_drafts AS d
    JOIN invoice_stage AS st ON st.tenant_id = d.tenant_id
),
updated AS (
    UPDATE invoices AS i
    SET currency = s.currency, total = s.total, run_id = CAST(:run_id AS uuid),
        updated_at = now()
    FROM staged AS s
    WHERE i.id = s.invoice_id
      AND (s.changed OR (i.currency, i.total) IS DISTINCT FROM (s.currency, s.total))
    RETURNING i.id
)
SELECT count(*) AS updated FROM updated
