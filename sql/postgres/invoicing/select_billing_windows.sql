-- purpose: the part of each subscription inside the period (all tenants or :tenant_ids)
SELECT s.id AS subscription_id, s.tenant_id, s.plan_id,
       GREATEST(s.starts_on, CAST(:period_start AS date)) AS window_start,
       LEAST(COALESCE(s.ends_on, CAST(:period_end AS date)), CAST(:period_end AS date))
           AS window_end
FROM subscriptions AS s
WHERE s.starts_on < CAST(:period_end AS date)
  AND (s.ends_on IS NULL OR s.ends_on > CAST(:period_start AS date))
  AND (CAST(:tenant_ids AS text[]) IS NULL OR s.tenant_id = ANY(CAST(:tenant_ids AS text[])))
