-- purpose: windows of current and future subscriptions (all tenants, or :tenant_ids) for the quota snapshot
SELECT tenant_id, id, starts_on, ends_on
FROM subscriptions
WHERE (ends_on IS NULL OR ends_on > CAST(:today AS date))
  AND (CAST(:tenant_ids AS text[]) IS NULL OR tenant_id = ANY(CAST(:tenant_ids AS text[])))
