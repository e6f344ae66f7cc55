-- purpose: temporary staging table for the invoice lines an invoice run computed (dropped at commit)
CREATE TEMPORARY TABLE invoice_line_stage (
    tenant_id text NOT NULL,
    line_no integer NOT NULL,
    kind text NOT NULL,
    subscription_id bigint,
    plan_code text NOT NULL,
    metric text,
    description text NOT NULL,
    window_start date NOT NULL,
    window_end date NOT NULL,
    quantity numeric(38, 6) NOT NULL,
    included numeric(38, 6) NOT NULL,
    billable_quantity numeric(38, 6) NOT NULL,
    pricing_model text,
    amount numeric(24, 6) NOT NULL,
    breakdown jsonb NOT NULL,
    "group" jsonb
) ON COMMIT DROP
