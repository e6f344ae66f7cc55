-- purpose: revoke an API key by id or prefix (no row returned when none is live)
UPDATE api_keys
SET revoked_at = now()
WHERE revoked_at IS NULL
  AND (id = CAST(:key_id AS bigint) OR prefix = CAST(:prefix AS text))
RETURNING id, name, prefix
