-- purpose: record when a key was last used (never moves back)
UPDATE api_keys
SET last_used_at = greatest(last_used_at, CAST(:used_at AS timestamptz))
WHERE id = :key_id
