-- purpose: audit rows of a tenant (or all) since a time, oldest first
SELECT id, at, key_id, key_name, action, tenant_id, object_type, object_id, before, after
FROM audit_log
WHERE (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id)
  AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
ORDER BY at, id
LIMIT :limit
