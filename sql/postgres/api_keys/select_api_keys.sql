-- purpose: live API keys (all, or the one with :prefix) for authentication; an expired key is not live
SELECT id, name, prefix, key_hash, scopes, tenant_id, expires_on, created_at, revoked_at
FROM api_keys
WHERE revoked_at IS NULL
  AND (expires_on IS NULL OR expires_on > (now() AT TIME ZONE 'UTC')::date)
  AND (CAST(:prefix AS text) IS NULL OR prefix = :prefix)
ORDER BY id
