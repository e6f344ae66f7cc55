-- purpose: record a tenant's spend for the period as of this run
INSERT INTO tenant_spend (tenant_id, period_start, currency, amount, as_of)
VALUES (:tenant_id, :period_start, :currency, :amount, :as_of)
ON CONFLICT (tenant_id) DO UPDATE
SET period_start = EXCLUDED.period_start, currency = EXCLUDED.currency,
    amount = EXCLUDED.amount, as_of = EXCLUDED.as_of
