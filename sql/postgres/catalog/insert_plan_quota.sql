-- purpose: add one metric's quota and pricing to a plan
INSERT INTO plan_quotas (plan_id, metric, aggregation, included, "limit", enforcement, pricing_model, pricing)
VALUES (:plan_id, :metric, :aggregation, :included, :limit, :enforcement, :pricing_model, CAST(:pricing AS jsonb))
