-- purpose: quota_usage rows for the in-process quota snapshot (all tenants, or :tenant_ids)
SELECT tenant_id, metric, subscription_id, plan_code, period_start, period_end, aggregation,
       included, "limit", enforcement, source, used, as_of
FROM quota_usage
WHERE CAST(:tenant_ids AS text[]) IS NULL OR tenant_id = ANY(CAST(:tenant_ids AS text[]))
