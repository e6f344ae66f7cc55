-- purpose: write the staged lines that the refreshed (not new) drafts do not already hold identically
WITH inserted AS (
    INSERT INTO invoice_lines (
        invoice_id, line_no, kind, subscription_id, plan_code, metric, description,
        window_start, window_end, quantity, included, billable_quantity, pricing_model, amount,
        breakdown, "group"
    )
    SELECT d.invoice_id, st.line_no, st.kind, st.subscription_id, st.plan_code, st.metric,
           st.description, st.window_start, st.window_end, st.quantity, st.included,
           st.billable_quantity, st.pricing_model, st.amount, st.breakdown, st."group"
    FROM invoice_line_stage AS st
    JOIN invoice_run_drafts AS d ON d.tenant_id = st.tenant_id
    WHERE NOT d.is_new
      AND NOT EXISTS (
        SELECT 1 FROM invoice_lines AS l
        WHERE l.invoice_id = d.invoice_id AND l.line_no = st.line_no
    )
    ORDER BY d.invoice_id, st.line_no
    RETURNING invoice_id
)
UPDATE invoice_run_drafts AS d
SET changed = true
WHERE d.invoice_id IN (SELECT invoice_id FROM inserted)
