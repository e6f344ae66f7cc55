-- purpose: a tenant's subscriptions with their plan codes, oldest first
SELECT s.id, s.tenant_id, p.code AS plan_code, s.starts_on, s.ends_on, s.created_at, s.updated_at
FROM subscriptions s
JOIN plans p ON p.id = s.plan_id
WHERE s.tenant_id = :tenant_id
ORDER BY s.starts_on, s.id
