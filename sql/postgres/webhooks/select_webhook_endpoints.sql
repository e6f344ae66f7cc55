-- purpose: live webhook endpoints (all, or one :endpoint_id), without their secrets
SELECT id, url, events, created_at
FROM webhook_endpoints
WHERE deleted_at IS NULL
  AND (CAST(:endpoint_id AS bigint) IS NULL OR id = CAST(:endpoint_id AS bigint))
ORDER BY id
