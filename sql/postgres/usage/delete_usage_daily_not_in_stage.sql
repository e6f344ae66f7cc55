-- purpose: remove usage_daily rows of the recomputed days (and tenants) that no longer have events
DELETE FROM usage_daily AS d
WHERE d.usage_date = ANY(:days)
  AND (CAST(:tenants AS text[]) IS NULL OR d.tenant_id = ANY(:tenants))
  AND NOT EXISTS (
      SELECT 1 FROM usage_daily_stage AS s
      WHERE s.tenant_id = d.tenant_id AND s.metric = d.metric AND s.usage_date = d.usage_date
  )
