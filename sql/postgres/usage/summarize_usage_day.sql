-- purpose: rows and total quantity per metric of one usage day (for the backfill report)
SELECT metric, count(*) AS rows, sum(quantity_sum) AS quantity
FROM usage_daily
WHERE usage_date = :day
  AND (CAST(:tenants AS text[]) IS NULL OR tenant_id = ANY(:tenants))
GROUP BY metric
ORDER BY metric
