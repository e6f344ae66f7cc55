-- purpose: write one line of a draft correction
INSERT INTO invoice_lines (invoice_id, line_no, kind, subscription_id, plan_code, metric,
                           description, window_start, window_end, quantity, included,
                           billable_quantity, pricing_model, amount, breakdown, "group")
VALUES (:invoice_id, :line_no, :kind, :subscription_id, :plan_code, :metric, :description,
        :window_start, :window_end, :quantity, :included, :billable_quantity, :pricing_model,
        :amount, CAST(:breakdown AS jsonb), CAST(:group AS jsonb))
