-- purpose: set a tenant's spend cap
INSERT INTO spend_caps (tenant_id, amount, updated_at) VALUES (:tenant_id, :amount, :now)
ON CONFLICT (tenant_id) DO UPDATE SET amount = EXCLUDED.amount, updated_at = EXCLUDED.updated_at
