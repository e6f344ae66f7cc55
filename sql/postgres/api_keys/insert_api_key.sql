-- purpose: store a new API key (its hash only)
INSERT INTO api_keys (name, prefix, key_hash, scopes, tenant_id)
VALUES (:name, :prefix, :key_hash, CAST(:scopes AS text[]), :tenant_id)
RETURNING id, created_at
