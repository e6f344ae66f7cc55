-- purpose: write the staged lines under the drafts created or refreshed by this run
INSERT INTO invoice_lines (
    invoice_id, line_no, kind, subscription_id, plan_code, metric, description, window_start,
    window_end, quantity, included, billable_quantity, pricing_model, amount, breakdown
)
SELECT u.invoice_id, st.line_no, st.kind, st.subscription_id, st.plan_code, st.metric,
       st.description, st.window_start, st.window_end, st.quantity, st.included,
       st.billable_quantity, st.pricing_model, st.amount, st.breakdown
FROM invoice_line_stage AS st
JOIN invoice_upserted AS u ON u.tenant_id = st.tenant_id
