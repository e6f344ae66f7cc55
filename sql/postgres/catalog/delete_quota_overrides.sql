-- purpose: remove a tenant's quota overrides (the first half of replacing the set)
DELETE FROM quota_overrides WHERE tenant_id = :tenant_id
