-- purpose: live API keys (all, or the one with :prefix) for authentication
SELECT id, name, prefix, key_hash, scopes, tenant_id, created_at, revoked_at
FROM api_keys
WHERE revoked_at IS NULL AND (CAST(:prefix AS text) IS NULL OR prefix = :prefix)
ORDER BY id
