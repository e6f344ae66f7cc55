-- purpose: every plan with its quotas (aggregation, included, pricing) for pricing an invoice run
SELECT p.id AS plan_id, p.code AS plan_code, p.name AS plan_name, p.currency, p.base_fee,
       p.minimum_commitment,
       q.metric, q.aggregation, q.included, q.pricing_model, q.pricing
FROM plans AS p
LEFT JOIN plan_quotas AS q ON q.plan_id = p.id
ORDER BY p.id, q.metric
