-- purpose: daily usage per tenant and metric from lake files, in exact integer micro-units
SELECT
    tenant_id,
    metric,
    usage_date,
    SUM(quantity_micros::HUGEINT) AS quantity_sum_micros,
    COUNT(*) AS event_count,
    MAX(quantity_micros) AS quantity_max_micros,
    MIN(occurred_at) AS first_occurred_at,
    MAX(occurred_at) AS last_occurred_at
FROM read_parquet($files)
WHERE $tenants IS NULL OR list_contains($tenants, tenant_id)
GROUP BY tenant_id, metric, usage_date
ORDER BY tenant_id, metric, usage_date
