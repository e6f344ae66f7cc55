-- purpose: retire a live endpoint (kept, with deleted_at, so its delivery log stays)
UPDATE webhook_endpoints SET deleted_at = :now
WHERE id = :endpoint_id AND deleted_at IS NULL
RETURNING id
