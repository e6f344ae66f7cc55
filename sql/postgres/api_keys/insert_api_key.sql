-- purpose: store a new API key (its hash only)
INSERT INTO api_keys (name, prefix, key_hash, scopes, tenant_id, expires_on)
VALUES (:name, :prefix, :key_hash, CAST(:scopes AS text[]), :tenant_id, CAST(:expires_on AS date))
RETURNING id, created_at
