-- purpose: does a subscription of the tenant overlapping the override's window have a plan pricing the metric?
SELECT EXISTS (
    SELECT 1
    FROM subscriptions s
    JOIN plan_quotas pq ON pq.plan_id = s.plan_id
    WHERE s.tenant_id = :tenant_id
      AND pq.metric = :metric
      AND (s.ends_on IS NULL OR CAST(:effective_from AS date) IS NULL OR s.ends_on > :effective_from)
      AND (CAST(:effective_to AS date) IS NULL OR s.starts_on < :effective_to)
) AS priced
