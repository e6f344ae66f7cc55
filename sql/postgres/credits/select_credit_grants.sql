-- purpose: a tenant's grants (all, or one :grant_id), newest first
SELECT id, tenant_id, currency, amount, remaining, effective_from, expires_on, priority, note, created_at
FROM credit_grants
WHERE tenant_id = :tenant_id
  AND (CAST(:grant_id AS bigint) IS NULL OR id = CAST(:grant_id AS bigint))
ORDER BY id DESC
