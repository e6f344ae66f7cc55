-- purpose: drop the lines of the refreshed (not new) drafts that the new pricing does not reproduce identically
WITH deleted AS (
    DELETE FROM invoice_lines AS l
    USING invoice_run_drafts AS d
    WHERE l.invoice_id = d.invoice_id
      AND NOT d.is_new
      AND NOT EXISTS (
          SELECT 1
          FROM invoice_line_stage AS st
          WHERE st.tenant_id = d.tenant_id
            AND st.line_no = l.line_no
            AND (st.kind, st.subscription_id, st.plan_code, st.metric, st.description,
                 st.window_start, st.window_end, st.quantity, st.included,
                 st.billable_quantity, st.pricing_model, st.amount, st.breakdown, st."group")
                IS NOT DISTINCT FROM
                (l.kind, l.subscription_id, l.plan_code, l.metric, l.description,
                 l.window_start, l.window_end, l.quantity, l.included,
                 l.billable_quantity, l.pricing_model, l.amount, l.breakdown, l."group")
      )
    RETURNING l.invoice_id
)
UPDATE invoice_run_drafts AS d
SET changed = true
WHERE d.invoice_id IN (SELECT invoice_id FROM deleted)
