-- purpose: a tenant's quota overrides by metric and window
SELECT id, tenant_id, metric, "limit", included, enforcement, effective_from, effective_to, created_at
FROM quota_overrides
WHERE tenant_id = :tenant_id
ORDER BY metric, effective_from NULLS FIRST, id
