-- purpose: subscribe a tenant to a plan (the trigger refuses overlapping windows with 23P01)
INSERT INTO subscriptions (tenant_id, plan_id, starts_on, ends_on)
SELECT :tenant_id, p.id, :starts_on, :ends_on FROM plans p WHERE p.code = :plan_code
RETURNING id, created_at, updated_at
