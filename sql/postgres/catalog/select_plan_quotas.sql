-- purpose: the quotas of the given plans, by plan and metric
SELECT plan_id, metric, aggregation, included, "limit", enforcement, pricing_model,
       CAST(pricing AS text) AS pricing
FROM plan_quotas
WHERE plan_id = ANY(CAST(:plan_ids AS bigint[]))
ORDER BY plan_id, metric
