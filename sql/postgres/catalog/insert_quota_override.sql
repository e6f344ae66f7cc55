-- purpose: add one quota override of a tenant
INSERT INTO quota_overrides (tenant_id, metric, "limit", included, enforcement, effective_from, effective_to)
VALUES (:tenant_id, :metric, :limit, :included, :enforcement, :effective_from, :effective_to)
